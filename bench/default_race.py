"""The default decoder against faster-whisper's, as users run them (issue: default vs default).

    python bench/default_race.py                 # everything (about 10 minutes on 2 cores)
    python bench/default_race.py --rounds 1 --skip-stability

Speech: bench/corpus.py (espeak-ng + sox): two files of ~4 minutes of different sentences
by eight voices with pauses and background noise (jfk.wav once in each), and 24
single-sentence clips. The same tiny.en weights for everyone: faster-whisper 1.2.1 runs the
packaged CTranslate2 files ours are converted from.

1. Whole process (import, load, decode the file, transcribe), a fresh interpreter per run,
   runners taking turns, median of ``--rounds``: wall, cpu-seconds (user + system of the
   child), peak RSS (``os.wait4``), WER. Rows:
   - ours default ``Model("tiny.en").transcribe(path)`` vs faster-whisper defaults
     ``WhisperModel(path).transcribe(path)``;
   - ours ``preset="fast"`` vs faster-whisper greedy (beam 1, temperature 0, no
     conditioning on previous text);
   - faster-whisper's ``BatchedInferencePipeline`` defaults (ours default is its peer: VAD
     chunks decoded in parallel).
2. Short clips: WER of the 24 clips, ours default vs faster-whisper default (one load).
3. Stability: each clip as 16 kHz WAV, 44.1 kHz stereo WAV, float WAV, FLAC, MP3 and with
   2 s of silence on each side: the share of clips whose normalised words are the same for
   every copy (ours default and faster-whisper default); and ours on 1, 2 and 4 threads
   (text identical in every clip and on the long files).
4. WER over six long files (long_a–long_f, seeds 1–6: ~25 minutes, ~4 000 words), one load
   each: ours default and fast vs faster-whisper default and greedy, per file and pooled
   (the words of all files in one count), so one file's luck does not decide a comparison.

Writes bench/results/default_race.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jiwer
import numpy as np
import soundfile as sf
import soxr

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402
from speech import JFK_TEXT, JFK_WAV  # noqa: E402

CACHE = corpus.CACHE

OURS = """
import json, sys, whisperx_native as wn
m = wn.Model("tiny.en")
r = m.transcribe(sys.argv[1], **json.loads(sys.argv[2]))
print(json.dumps({"text": r.text, "variant": m.variant, "threads": r.timings.get("n_threads")}))
"""

FW = """
import json, sys
from faster_whisper import WhisperModel, BatchedInferencePipeline
m = WhisperModel(sys.argv[3])
kw = json.loads(sys.argv[2])
if kw.pop("batched", False):
    segs, info = BatchedInferencePipeline(m).transcribe(sys.argv[1], **kw)
else:
    segs, info = m.transcribe(sys.argv[1], **kw)
print(json.dumps({"text": " ".join(s.text.strip() for s in segs)}))
"""

RUNNERS = {
    "ours default": (OURS, {}),
    "faster-whisper default": (FW, {}),
    "ours fast": (OURS, {"preset": "fast"}),
    "faster-whisper greedy": (FW, {"beam_size": 1, "temperature": 0.0, "condition_on_previous_text": False}),
    "faster-whisper batched": (FW, {"batched": True}),
}


def ct2_dir() -> str:
    from whisperx_native.models.store import packaged_ct2_files

    files = packaged_ct2_files("tiny.en")
    return str(Path(files[0]).parent)


def _spawn(code: str, wav: Path, kw: dict) -> dict:
    """One whole-process run, reaping the child ourselves: wall, cpu-seconds and peak RSS of
    exactly that process (ru_maxrss of wait4; a fork of this big process would report ours)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    r_out, w_out = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        os.dup2(w_out, 1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(r_out)
        os.chdir(tempfile.gettempdir())
        os.execve(sys.executable, [sys.executable, "-c", code, str(wav), json.dumps(kw), ct2_dir()], env)
    os.close(w_out)
    chunks = []
    while True:
        b = os.read(r_out, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r_out)
    _pid, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(f"runner failed with status {status}")
    data = json.loads(b"".join(chunks).decode().strip().splitlines()[-1])
    data.update(wall=wall, cpu=ru.ru_utime + ru.ru_stime, rss_mb=ru.ru_maxrss / 1024)
    return data


def wer(ref: str, hyp: str) -> float:
    return 100 * jiwer.wer(corpus.normalize(ref), corpus.normalize(hyp))


def whole_process(files, rounds: int):
    rows = {}
    for r in range(rounds):
        for name, wav, ref in files:
            order = list(RUNNERS)
            order = order[r % len(order):] + order[: r % len(order)]  # runners take turns
            for key in order:
                code, kw = RUNNERS[key]
                d = _spawn(code, wav, kw)
                rows.setdefault((name, key), []).append({**d, "wer": wer(ref, d["text"])})
                print(f"  {name:8s} {key:24s} {d['wall']:6.2f} s {d['cpu']:6.2f} cpu-s {d['rss_mb']:6.0f} MB "
                      f"WER {rows[(name, key)][-1]['wer']:5.2f} %", flush=True)
    out = {}
    for (name, key), runs in rows.items():
        out[(name, key)] = {k: statistics.median(run[k] for run in runs) for k in ("wall", "cpu", "rss_mb", "wer")}
        out[(name, key)]["texts_equal"] = len({run["text"] for run in runs}) == 1
    return out


def variants(wav: Path, tmp: Path):
    x, sr = sf.read(str(wav), dtype="float32")
    out = {"16k wav": wav}
    st = soxr.resample(x, sr, 44100)
    p = tmp / f"{wav.stem}-44k.wav"
    sf.write(str(p), np.stack([st, st], axis=1), 44100, subtype="PCM_16")
    out["44.1k stereo"] = p
    p = tmp / f"{wav.stem}-float.wav"
    sf.write(str(p), x, sr, subtype="FLOAT")
    out["float wav"] = p
    p = tmp / f"{wav.stem}.flac"
    sf.write(str(p), x, sr)
    out["flac"] = p
    p = tmp / f"{wav.stem}.mp3"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), "-b:a", "64k", str(p)], check=True)
    out["mp3"] = p
    p = tmp / f"{wav.stem}-padded.wav"
    pad = np.zeros(2 * sr, dtype=np.float32)
    sf.write(str(p), np.concatenate([pad, x, pad]), sr, subtype="PCM_16")
    out["padded"] = p
    return out


def fw_transcript(fw, path, **options) -> str:
    """faster-whisper's text of ``path`` (its segments joined)."""
    segs, _ = fw.transcribe(str(path), **options)
    return " ".join(s.text.strip() for s in segs)


def short_and_stability(utts, longs, skip_stability: bool):
    import whisperx_native as wn
    from faster_whisper import WhisperModel

    ours = wn.Model("tiny.en", adapt_threads=False)
    fw = WhisperModel(ct2_dir())
    fw_text = lambda path: fw_transcript(fw, path)  # noqa: E731

    refs = " ".join(t for _, t in utts)
    res = {
        "short_wer_ours": wer(refs, " ".join(ours.transcribe(str(w), n_threads=2).text for w, _ in utts)),
        "short_wer_fw": wer(refs, " ".join(fw_text(w) for w, _ in utts)),
        "clips": len(utts),
    }
    if skip_stability:
        return res
    same_ours = same_fw = 0
    with tempfile.TemporaryDirectory() as tmp:
        for wav, _ in utts:
            vs = variants(wav, Path(tmp))
            ours_words = {corpus.normalize(ours.transcribe(str(p), n_threads=2).text) for p in vs.values()}
            fw_words = {corpus.normalize(fw_text(p)) for p in vs.values()}
            same_ours += len(ours_words) == 1
            same_fw += len(fw_words) == 1
    res["stable_ours"] = 100 * same_ours / len(utts)
    res["stable_fw"] = 100 * same_fw / len(utts)
    thread_same = 0
    audio = [wn.load_audio(str(w)) for w, _ in utts] + [wn.load_audio(str(w)) for _, w, _ in longs]
    for a in audio:
        texts = {ours.transcribe(a, n_threads=n).text for n in (1, 2, 4)}
        thread_same += len(texts) == 1
    res["threads_identical"] = 100 * thread_same / len(audio)
    res["threads_cases"] = len(audio)
    return res


LONG_SEEDS = (("long_a", 1), ("long_b", 2), ("long_c", 3), ("long_d", 4), ("long_e", 5), ("long_f", 6))


def corpus_wer():
    """WER per long file and pooled: ours default / fast, faster-whisper default / greedy."""
    import whisperx_native as wn
    from faster_whisper import WhisperModel

    ours = wn.Model("tiny.en", n_threads=2, adapt_threads=False)
    fw = WhisperModel(ct2_dir(), cpu_threads=2)
    runners = {
        "ours default": lambda p: ours.transcribe(str(p)).text,
        "ours fast": lambda p: ours.transcribe(str(p), preset="fast").text,
        "faster-whisper default": lambda p: fw_transcript(fw, p),
        "faster-whisper greedy": lambda p: fw_transcript(fw, p, beam_size=1, temperature=0.0,
                                                         condition_on_previous_text=False),
    }
    refs, hyps, per_file = [], {k: [] for k in runners}, {}
    for name, seed in LONG_SEEDS:
        wav, sentences = corpus.build_long(CACHE, name, seed)
        refs.append(corpus.normalize(" ".join(x["text"] for x in sentences)))
        for key, run in runners.items():
            hyps[key].append(corpus.normalize(run(wav)))
        per_file[name] = {k: 100 * jiwer.wer(refs[-1], h[-1]) for k, h in hyps.items()}
        print(name, {k: round(v, 2) for k, v in per_file[name].items()}, flush=True)
    pooled = {k: 100 * jiwer.wer(refs, h) for k, h in hyps.items()}
    return {"files": per_file, "pooled": pooled, "words": sum(len(r.split()) for r in refs)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-stability", action="store_true")
    ap.add_argument("--skip-corpus-wer", action="store_true", help="skip the six long files' WER (section 4)")
    ap.add_argument("--out", default=str(HERE / "results" / "default_race"))
    args = ap.parse_args(argv)

    longs = []
    for name, seed in LONG_SEEDS[:2]:
        wav, sentences = corpus.build_long(CACHE, name, seed)
        longs.append((name, wav, " ".join(s["text"] for s in sentences)))
    utts = corpus.build_utterances(CACHE)
    files = longs + [("jfk", JFK_WAV, JFK_TEXT)]
    # warm-up: the model store derives tiny.en's best variant once (not timed)
    _spawn(OURS, JFK_WAV, {})

    print("whole process:", flush=True)
    wp = whole_process(files, args.rounds)
    print("short clips and stability:", flush=True)
    st = short_and_stability(utts, longs, args.skip_stability)
    cw = None
    if not args.skip_corpus_wer:
        print("WER over six long files:", flush=True)
        cw = corpus_wer()

    lines = [f"# Default decoder race ({time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} cores, tiny.en)", "",
             "| file | runner | wall s | cpu-s | peak RSS MB | WER % | same text every round |",
             "|---|---|---:|---:|---:|---:|---|"]
    for (name, key), v in wp.items():
        lines.append(f"| {name} | {key} | {v['wall']:.2f} | {v['cpu']:.2f} | {v['rss_mb']:.0f} | {v['wer']:.2f} | "
                     f"{'yes' if v['texts_equal'] else 'no'} |")
    ratios = []
    for name, _, _ in files:
        for ours, peer in (("ours default", "faster-whisper default"), ("ours fast", "faster-whisper greedy"),
                           ("ours default", "faster-whisper batched")):
            a, b = wp[(name, ours)], wp[(name, peer)]
            ratios.append((f"{name}: {ours} / {peer}", a["wall"] / b["wall"], a["cpu"] / b["cpu"],
                           a["rss_mb"] / b["rss_mb"], a["wer"] - b["wer"]))
    lines += ["", "| ratio (same run) | wall | cpu-s | peak RSS | WER difference (points) |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {n} | {w:.3f} | {c:.3f} | {r:.3f} | {d:+.2f} |" for n, w, c, r, d in ratios]
    lines += ["", f"Short clips ({st['clips']}): WER ours default {st['short_wer_ours']:.2f} %, "
                  f"faster-whisper default {st['short_wer_fw']:.2f} %."]
    if "stable_ours" in st:
        lines += [f"Same words for every copy (16 kHz WAV, 44.1 kHz stereo, float WAV, FLAC, MP3, padded): "
                  f"ours {st['stable_ours']:.1f} % of clips, faster-whisper {st['stable_fw']:.1f} %.",
                  f"Identical text on 1, 2 and 4 threads: {st['threads_identical']:.1f} % of "
                  f"{st['threads_cases']} cases (clips and long files)."]
    if cw is not None:
        keys = list(cw["pooled"])
        lines += ["", f"WER over six long files ({cw['words']} words; one load each, in one process):", "",
                  "| file | " + " | ".join(keys) + " | fast − greedy | default − default |",
                  "|---|" + "---:|" * (len(keys) + 2)]
        for name, v in list(cw["files"].items()) + [("**pooled**", cw["pooled"])]:
            lines.append(f"| {name} | " + " | ".join(f"{v[k]:.2f}" for k in keys)
                         + f" | {v['ours fast'] - v['faster-whisper greedy']:+.2f}"
                         + f" | {v['ours default'] - v['faster-whisper default']:+.2f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(report)
    out.with_suffix(".json").write_text(json.dumps({"whole_process": {f"{k[0]} | {k[1]}": v for k, v in wp.items()},
                                                    "clips": st, "corpus_wer": cw, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                                                    "machine": platform.platform()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
