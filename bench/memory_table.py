"""The seed's memory table: whole-process peak RSS (import, load, transcribe jfk.wav) per model.

    python bench/memory_table.py               # tiny.en real; small and medium synthetic
    python bench/memory_table.py --skip-wer    # the memory only (the WER of the speech sets takes ~20 min)

Each cell is a fresh ``python -c`` child measured by ``os.wait4`` (``ru_maxrss``): greedy
(``preset="fast"``) and beam 5 (the default decoder). small and medium use synthetic weights
of their exact dimensions (tests/_synthetic.py; the allocations are the real ones). Prints a
Markdown table and writes bench/results/memory_table.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))
JFK = REPO / "vendor" / "whisper.cpp" / "samples" / "jfk.wav"

CHILD = """
import sys, whisperx_native as wn
m = wn.Model(sys.argv[1], n_threads=2, adapt_threads=False, best_variant=False, kv_type=sys.argv[4])
r = m.transcribe(sys.argv[2], preset=sys.argv[3], language="en")
assert r.text.strip(), "no text"
"""


# Linux carries a process's peak RSS across fork and exec: a child of this process would
# report at least our size. A small Python in between (bench/runners.py's probe) starts the
# measured one, so the floor is ~10 MB, not this process.
from runners import _PROBE  # noqa: E402


def peak_rss_mb(model: str, preset: str, kv_type: str = "auto") -> float:
    out = subprocess.run([sys.executable, "-c", _PROBE, sys.executable, "-c", CHILD, model, str(JFK), preset, kv_type],
                         capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
    kb = int(out.stdout.strip())
    if kb < 0:
        raise RuntimeError(f"{model} {preset} failed")
    return kb / 1024


def manager_picks():
    """(name, budget MB, what the manager loads) with its quantized steps allowed."""
    from whisperx_native.errors import MemoryBudgetError
    from whisperx_native.manager.budget import MB, fitting

    out = []
    for name, budget in (("tiny.en", 100), ("small.en", 400), ("medium.en", 700)):
        try:
            chosen, need, kv_type = fitting(name, budget * MB, 1, [name])[0]
            caches = "" if kv_type == "auto" else f" with {kv_type} caches"
            out.append((name, budget, f"{chosen}{caches} (estimated peak {need / MB:.0f} MB)"))
        except MemoryBudgetError as exc:
            out.append((name, budget, f"none: {exc}"))
    return out


def pick_wer(budget_mb: int = 100) -> dict:
    """WER on the speech sets of tiny.en's default (the bf16q8 file, f16 caches, two states on
    a long file) against what WhisperManager runs under ``budget_mb`` (its pick, caches and
    states a call) and against the q8_0, q5q8 and q5e8 files: the six long files of bench/default_race.py, its 24 clips, and the
    recordings of people (bench/corpus.real_speech) with jfk.wav; pooled per set."""
    import jiwer

    import corpus
    import whisperx_native as wn
    from default_race import CACHE, LONG_SEEDS
    from speech import JFK_TEXT
    from whisperx_native.manager.budget import MB

    sets = {"six long files": [], "24 clips": corpus.build_utterances(CACHE),
            "11 recordings of people": corpus.real_speech(CACHE) + [(JFK, JFK_TEXT)]}
    for name, seed in LONG_SEEDS:
        wav, sentences = corpus.build_long(CACHE, name, seed)
        sets["six long files"].append((wav, " ".join(x["text"] for x in sentences)))
    runners = {"default": wn.Model("tiny.en", n_threads=2, adapt_threads=False).transcribe}
    # the files around the 100 MB line: q8_0, q5_0 encoder + q8_0 decoder (q5q8), q5_0 but the
    # q8_0 token embedding (q5e8)
    for variant in ("q8_0", "q5q8", "q5e8"):
        runners[variant] = wn.Model(f"tiny.en-{variant}", n_threads=2, adapt_threads=False,
                                    best_variant=False).transcribe
    out = {}
    with wn.WhisperManager("tiny.en", memory_budget=budget_mb * MB, n_threads=2, idle_timeout=None, max_concurrent=1,
                           auto_downgrade=False) as manager:
        runners["pick"] = manager.transcribe
        for key, items in sets.items():
            refs = [corpus.normalize(t) for _, t in items]
            hyps = {k: [corpus.normalize(run(str(p)).text) for p, _ in items] for k, run in runners.items()}
            out[key] = {k: 100 * jiwer.wer(refs, h) for k, h in hyps.items()}
            print(key, {k: round(v, 2) for k, v in out[key].items()}, flush=True)
        out["pick"] = manager.model_name
    return out


def main(argv=None) -> None:
    import argparse

    from _synthetic import write_synthetic
    from whisperx_native.models import store

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--skip-wer", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # (registry name, synthetic quantization or None for the real file, label, budget MB, kv_type)
        cells = [("tiny.en", None, "tiny.en f16 (real)", 100, "auto"),
                 ("tiny.en-q8_0", None, "tiny.en q8_0 (real)", 100, "auto"),
                 ("tiny.en-q8_0", None, "tiny.en q8_0, q8_0 caches (real)", 100, "q8_0"),
                 ("tiny.en-bf16q8", None, "tiny.en bf16q8 (real)", 100, "auto"),
                 ("tiny.en-q5_0", None, "tiny.en q5_0 (real)", 100, "auto"),
                 ("tiny.en-q5_0", None, "tiny.en q5_0, q8_0 caches (real)", 100, "q8_0"),
                 ("tiny.en-q5q8", None, "tiny.en q5q8 (real)", 100, "auto"),
                 ("tiny.en-q5q8", None, "tiny.en q5q8, q8_0 caches (real)", 100, "q8_0"),
                 ("tiny.en-q5e8", None, "tiny.en q5e8 (real)", 100, "auto"),
                 ("small", "q8_0", "small q8_0 (synthetic)", 400, "auto"),
                 ("small", "q6_k", "small q6_k (synthetic)", 400, "auto"),
                 ("small", "q5_0", "small q5_0 (synthetic)", 400, "auto"),
                 ("small", "q4_0", "small q4_0 (synthetic)", 400, "auto"),
                 ("medium", "q5_0", "medium q5_0 (synthetic)", 700, "auto"),
                 ("medium", "q4_0", "medium q4_0 (synthetic)", 700, "auto"),
                 ("medium", "q4_k", "medium q4_k (synthetic)", 700, "auto"),
                 ("medium", "q3_k", "medium q3_k (synthetic)", 700, "auto")]
        for name, quant, label, budget, kv_type in cells:
            if quant is None:
                path = str(store.resolve_model_path(name))
            else:
                path = str(write_synthetic(Path(tmp) / f"{name}-{quant}.bin", name, quant))
            weights = os.path.getsize(path) / 1e6
            greedy, beam = peak_rss_mb(path, "fast", kv_type), peak_rss_mb(path, "accurate", kv_type)
            rows.append((label, weights, greedy, beam, budget))
            print(rows[-1], flush=True)
            if quant is not None:
                os.unlink(path)
    lines = ["| model | file MB | peak RSS greedy MB | "
             "peak RSS beam 5 MB | budget MB | fits greedy / beam |", "|---|---:|---:|---:|---:|---|"]
    for label, weights, greedy, beam, budget in rows:
        lines.append(f"| {label} | {weights:.0f} | {greedy:.0f} | {beam:.0f} | {budget} | "
                     f"{'yes' if greedy <= budget else 'no'} / {'yes' if beam <= budget else 'no'} |")
    lines += ["", "What WhisperManager loads under a budget of the seed's figure (its estimated peak, beam 5, "
              "the attention caches Model loads: manager/budget.py):", ""]
    lines += [f"- {name} within {budget} MB: **{picks}**" for name, budget, picks in manager_picks()]
    if not args.skip_wer:
        wer = pick_wer()
        lines += ["", f"WER of tiny.en's default against the manager's pick for 100 MB ({wer.pop('pick')}, "
                  "its caches and states), pooled per speech set:", "",
                  "| speech set | default | pick | q8_0 | q5q8 | q5e8 |", "|---|---:|---:|---:|---:|---:|"]
        d = lambda v, k: f"{v[k]:.2f} % ({v[k] - v['default']:+.2f})"  # noqa: E731
        lines += [f"| {k} | {v['default']:.2f} % | {d(v, 'pick')} | {d(v, 'q8_0')} | {d(v, 'q5q8')} | {d(v, 'q5e8')} |"
                  for k, v in wer.items()]
    text = "\n".join(lines)
    print(text)
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "memory_table.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
