"""Word timestamps against speech whose boundaries are known (issue 13).

    nice python bench/word_timing.py                 # about 5 minutes on 2 busy cores
    python bench/word_timing.py --rounds 1 --threads 2

Speech: bench/corpus.py's two long files (``long_a``, ``long_b``: ~4 minutes each of
sentences by eight espeak-ng voices, pauses of 0.2-2.5 s, background noise in a third of
the file, jfk.wav once); each sentence was synthesised alone, trimmed of its own silence
and placed at a known sample, so its speech start and end are known to ~10 ms (the JSON
beside each file). 76 utterances.

Per utterance: the transcript's words (all of the file, in time order) are aligned to the
reference words (difflib, normalised words); the utterance's **start boundary** is matched
when its first reference word aligns to a word of the transcript (an equal word, or the
word in its place where one word was heard as another), and its error is that word's start
minus the speech start; the **end boundary** likewise with its last word's end and the
speech end. Reported: median, p90 and max of |error| over the matched boundaries, the share
of boundaries matched (and of those whose word was recognised exactly), and the signed
median of each side.

Runners, in one process on the same files:
- whisperx_native, the default decoder (``Model("tiny.en").transcribe(path, word_timestamps=True)``:
  beam 5, VAD chunks on long audio);
- faster-whisper 1.2.1 ``WhisperModel(ct2 tiny.en).transcribe(path, word_timestamps=True)``
  (the same weights; its defaults otherwise).

Cost: whisperx_native's transcription time with and without ``word_timestamps`` on the same
audio, the two taking turns, best of ``--rounds`` each.

Writes bench/results/word_timing.md and .json.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402

CACHE = corpus.CACHE

#: (start, end, text) of one recognised word, seconds in the file.
HypWord = Tuple[float, float, str]


def _tokens(text: str) -> List[str]:
    return corpus.normalize(text).split()


def boundary_errors(sentences: List[Dict], words: List[HypWord]) -> List[Dict]:
    """Per utterance: {start_err, end_err} (seconds, None where not matched)."""
    ref: List[str] = []
    ref_owner: List[int] = []  # utterance of each reference token
    first_last: List[Tuple[int, int]] = []
    for k, s in enumerate(sentences):
        toks = _tokens(s["text"])
        first_last.append((len(ref), len(ref) + len(toks) - 1))
        ref += toks
        ref_owner += [k] * len(toks)
    hyp: List[str] = []
    hyp_word: List[int] = []  # recognised word of each hypothesis token
    for i, (_a, _b, text) in enumerate(words):
        for tok in _tokens(text):
            hyp.append(tok)
            hyp_word.append(i)
    match: Dict[int, int] = {}  # reference token -> hypothesis token
    equal = set()  # reference tokens recognised as they are
    for op, a0, a1, b0, b1 in difflib.SequenceMatcher(None, ref, hyp, autojunk=False).get_opcodes():
        if op == "equal" or (op == "replace" and a1 - a0 == b1 - b0):  # a word for a word
            for d in range(a1 - a0):
                match[a0 + d] = b0 + d
                if op == "equal":
                    equal.add(a0 + d)
    out = []
    for k, s in enumerate(sentences):
        first, last = first_last[k]
        e: Dict = {"start_err": None, "end_err": None, "start_equal": first in equal, "end_equal": last in equal}
        if first in match:
            e["start_err"] = words[hyp_word[match[first]]][0] - s["start"]
        if last in match:
            e["end_err"] = words[hyp_word[match[last]]][1] - s["end"]
        out.append(e)
    return out


def summary(errors: List[Dict]) -> Dict[str, float]:
    starts = [e["start_err"] for e in errors if e["start_err"] is not None]
    ends = [e["end_err"] for e in errors if e["end_err"] is not None]
    both = np.abs(np.array(starts + ends)) * 1000
    return {
        "utterances": len(errors),
        "boundaries": 2 * len(errors),
        "matched_pct": 100 * len(both) / (2 * len(errors)),
        "recognised_pct": 100 * sum(e["start_equal"] + e["end_equal"] for e in errors) / (2 * len(errors)),
        "median_ms": float(np.median(both)) if both.size else float("nan"),
        "p90_ms": float(np.percentile(both, 90)) if both.size else float("nan"),
        "max_ms": float(both.max()) if both.size else float("nan"),
        "start_median_signed_ms": 1000 * statistics.median(starts) if starts else float("nan"),
        "end_median_signed_ms": 1000 * statistics.median(ends) if ends else float("nan"),
        "start_median_ms": 1000 * statistics.median(map(abs, starts)) if starts else float("nan"),
        "end_median_ms": 1000 * statistics.median(map(abs, ends)) if ends else float("nan"),
    }


def ours_words(model, wav: Path, **kw) -> Tuple[List[HypWord], float]:
    t0 = time.perf_counter()
    r = model.transcribe(str(wav), word_timestamps=True, **kw)
    wall = time.perf_counter() - t0
    return [(w.start, w.end, w.text) for s in r.segments for w in s.words], wall


def fw_words(model, wav: Path) -> Tuple[List[HypWord], float]:
    t0 = time.perf_counter()
    segs, _info = model.transcribe(str(wav), word_timestamps=True, language="en")
    words = [(w.start, w.end, w.word) for s in segs for w in (s.words or [])]
    return words, time.perf_counter() - t0


def cost(model, wavs: List[Path], rounds: int) -> Dict[str, float]:
    """Best-of-rounds seconds to transcribe ``wavs`` with and without word_timestamps, taking
    turns: wall time, and this process's cpu-seconds (steadier on a shared machine)."""
    import resource

    def cpu() -> float:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime

    best = {False: float("inf"), True: float("inf")}
    best_cpu = {False: float("inf"), True: float("inf")}
    for _ in range(rounds):
        for flag in (False, True):
            t0, c0 = time.perf_counter(), cpu()
            for wav in wavs:
                model.transcribe(str(wav), word_timestamps=flag)
            best[flag] = min(best[flag], time.perf_counter() - t0)
            best_cpu[flag] = min(best_cpu[flag], cpu() - c0)
    return {"without_s": best[False], "with_s": best[True], "cost_pct": 100 * (best[True] / best[False] - 1),
            "without_cpu_s": best_cpu[False], "with_cpu_s": best_cpu[True],
            "cost_cpu_pct": 100 * (best_cpu[True] / best_cpu[False] - 1)}


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2, help="cost: best of this many runs each (default 2)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="tiny.en", help="our model: a registry name or a ggml file")
    ap.add_argument("--skip-faster-whisper", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "word_timing"))
    args = ap.parse_args(argv)

    import whisperx_native as wn

    files = [corpus.build_long(CACHE, name, seed) for name, seed in (("long_a", 1), ("long_b", 2))]
    model = wn.Model(args.model, n_threads=args.threads, adapt_threads=False)
    results: Dict[str, Dict] = {}
    per_utt: Dict[str, List] = {}

    def measure(words_of):
        """(boundary errors, transcription seconds) of one runner over both files."""
        errs, wall = [], 0.0
        for wav, sentences in files:
            words, w = words_of(wav)
            wall += w
            errs += boundary_errors(sentences, words)
        return errs, wall

    errs, wall = measure(lambda wav: ours_words(model, wav))
    results["whisperx_native default"] = {**summary(errs), "wall_s": wall}
    per_utt["whisperx_native default"] = errs
    print("whisperx_native:", results["whisperx_native default"], flush=True)

    if not args.skip_faster_whisper:
        from faster_whisper import WhisperModel
        from whisperx_native.models.store import packaged_ct2_files

        fw = WhisperModel(str(Path(packaged_ct2_files("tiny.en")[0]).parent), device="cpu", cpu_threads=args.threads)
        errs, wall = measure(lambda wav: fw_words(fw, wav))
        results["faster-whisper word_timestamps"] = {**summary(errs), "wall_s": wall}
        per_utt["faster-whisper word_timestamps"] = errs
        print("faster-whisper:", results["faster-whisper word_timestamps"], flush=True)
        del fw

    c = cost(model, [wav for wav, _ in files], args.rounds)
    print("cost:", c, flush=True)
    model.close()

    n_utt = sum(len(s) for _, s in files)
    lines = [f"# Word timestamps against known speech boundaries ({time.strftime('%Y-%m-%d')}, "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, tiny.en, "
             f"{args.threads} threads)", "",
             f"{n_utt} utterances in bench/corpus.py's long_a + long_b ({sum(s[-1]['end'] for _, s in files):.0f} s "
             "of speech and pauses); a boundary is matched when the utterance's first (last) reference word "
             "aligns to a recognised word (equal, or heard as another word in its place); error = that word's "
             "start (end) − the speech start (end).", "",
             "| runner | matched % | word exact % | median ms | p90 ms | max ms | start median (signed) ms | "
             "end median (signed) ms | transcribe s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['matched_pct']:.1f} | {r['recognised_pct']:.1f} | {r['median_ms']:.0f} | "
                     f"{r['p90_ms']:.0f} | {r['max_ms']:.0f} | {r['start_median_ms']:.0f} ({r['start_median_signed_ms']:+.0f}) | "
                     f"{r['end_median_ms']:.0f} ({r['end_median_signed_ms']:+.0f}) | {r['wall_s']:.1f} |")
    lines += ["", f"Cost of word_timestamps (whisperx_native default decoder, both files, best of {args.rounds}, "
                  f"taking turns): {c['without_s']:.2f} s without, {c['with_s']:.2f} s with: "
                  f"**{c['cost_pct']:+.1f} %** wall; {c['without_cpu_s']:.2f} / {c['with_cpu_s']:.2f} cpu-s: "
                  f"**{c['cost_cpu_pct']:+.1f} %** cpu.",
              "", "Targets (issue 13): median ≤ 80 ms, p90 ≤ 250 ms, ≥ 95 % matched, cost ≤ 10 %."]
    report = "\n".join(lines) + "\n"
    print(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(report)
    out.with_suffix(".json").write_text(json.dumps({"results": results, "cost": c, "per_utterance": per_utt,
                                                    "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                                                    "machine": platform.platform(), "argv": sys.argv[1:]},
                                                   indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
