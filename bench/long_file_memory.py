"""Peak memory of transcribing a file by its length (issue 14: long files stream).

    python bench/long_file_memory.py              # jfk.wav, long_a.wav (4 min), a 1-hour FLAC
    python bench/long_file_memory.py --skip-hour  # without the hour (about 10 minutes less)

Each cell is a fresh ``python -c`` child measured by ``os.wait4`` (``ru_maxrss``, through
bench/runners.py's small probe process) doing ``Model("tiny.en", adapt_threads=False).transcribe(...)``
with the default options (adapt_threads=False: the model's 2 threads whatever the machine's load, so
the cells run as many states at once and compare): "before" hands it ``load_audio(path)`` (what ``transcribe(path)`` did before:
the whole file decoded into one float32 array), "after" the path (decoded block by block into
a disk spool, the VAD fed on the way: whisperx_native/filestream.py), "one state" the path with
``chunk_workers=1`` (the long-form chunks one after another on one 2-thread state, as
WhisperManager runs them when its budget holds one state a call), "budget" the path through
``WhisperManager("tiny.en", memory_budget=100 MB, max_concurrent=1)`` (its pick: smaller weights,
q8_0 caches, one state), "q8" the path on tiny.en-q8_0 with q8_0 caches (the file whose words
hold: the default's WER on the speech sets), one state. The hour is long_a and
long_b of bench/corpus.py joined, cached as FLAC in ~/.cache/whisperx_native-bench/. Prints a
Markdown table and writes bench/results/long_file_memory.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from runners import _PROBE  # noqa: E402 - Linux carries peak RSS across fork and exec: a probe in between
import corpus  # noqa: E402

CACHE = corpus.CACHE
JFK = REPO / "vendor" / "whisper.cpp" / "samples" / "jfk.wav"
#: bench/corpus.py's long files (name, seed), as bench/default_race.py builds them.
LONG_FILES = (("long_a", 1), ("long_b", 2))

CHILD = """
import json, sys, time
import whisperx_native as wn
path, how, out = sys.argv[1:4]
t = time.perf_counter()
if how == "budget":  # what WhisperManager runs under the seed's 100 MB for tiny.en, one call at a time
    from whisperx_native.manager.budget import MB
    m = wn.WhisperManager("tiny.en", memory_budget=100 * MB, max_concurrent=1, n_threads=2, idle_timeout=None,
                          auto_downgrade=False)
    r = m.transcribe(path)
elif how == "q8":  # q8_0 weights and caches, one state: the smallest file that keeps the default's WER
    m = wn.Model("tiny.en-q8_0", adapt_threads=False, best_variant=False, kv_type="q8_0")
    r = m.transcribe(path, chunk_workers=1)
else:
    m = wn.Model("tiny.en", adapt_threads=False)
    r = m.transcribe(wn.load_audio(path) if how == "before" else path, **({"chunk_workers": 1} if how == "one" else {}))
json.dump({"wall_s": time.perf_counter() - t, "audio_s": r.timings["audio_seconds"], "chunks": r.timings.get("chunks"),
           "workers": r.timings.get("workers", 1), "threads": r.timings["n_threads"], "words": len(r.text.split()),
           "text": r.text}, open(out, "w"))
"""


def hour_flac(cache: Path = CACHE, seconds: float = 3600.0) -> Path:
    """long_a and long_b (bench/corpus.py) in turn until an hour, 16 kHz mono FLAC (cached)."""
    path = cache / "long_hour.flac"
    if path.exists():
        return path
    import soundfile as sf


    parts = [corpus.build_long(cache, name, seed)[0] for name, seed in LONG_FILES]
    pieces, n, i = [], 0, 0
    while n < seconds * 16000:
        x, sr = sf.read(parts[i % 2], dtype="int16")
        assert sr == 16000 and x.ndim == 1
        pieces.append(x)
        n += x.size
        i += 1
    tmp = path.with_suffix(".tmp.flac")
    sf.write(tmp, np.concatenate(pieces)[: int(seconds * 16000)], 16000, subtype="PCM_16")
    tmp.replace(path)
    return path


def measure(path: Path, how: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        proc = subprocess.run([sys.executable, "-c", _PROBE, sys.executable, "-c", CHILD, str(path), how, str(out)],
                              capture_output=True, text=True, check=True, cwd=tmp)
        kb = int(proc.stdout.strip())
        if kb < 0:
            raise RuntimeError(f"{path} {how} failed")
        cell = json.loads(out.read_text())
    cell["peak_mb"] = kb / 1024
    return cell


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--skip-hour", action="store_true")
    args = ap.parse_args(argv)

    files = [("jfk.wav (11 s)", JFK), ("long_a.wav (4 min)", corpus.build_long(CACHE, *LONG_FILES[0])[0])]
    if not args.skip_hour:
        files.append(("long_hour.flac (1 h)", hour_flac()))
    rows = []
    for label, path in files:
        cells = {how: measure(path, how) for how in ("before", "after", "one", "budget", "q8")}
        same = cells["before"]["text"] == cells["after"]["text"] == cells["one"]["text"]
        rows.append((label, cells, same))
        print(label, {k: (round(v["peak_mb"], 1), round(v["wall_s"], 1), v["workers"], v["threads"])
                      for k, v in cells.items()}, "same text:", same, flush=True)
    lines = ["| file | peak RSS before MB (`transcribe(load_audio(path))`) | peak RSS after MB (`transcribe(path)`) | "
             "peak RSS one state MB (`chunk_workers=1`) | peak RSS under a 100 MB budget (`WhisperManager`) | "
             "peak RSS tiny.en-q8_0 with q8_0 caches, one state MB | chunks | "
             "states at once | wall s before / after / one / budget / q8 | same text (the first three) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for label, cells, same in rows:
        b, a, o, g, q = cells["before"], cells["after"], cells["one"], cells["budget"], cells["q8"]
        lines.append(f"| {label} | {b['peak_mb']:.0f} | {a['peak_mb']:.0f} | {o['peak_mb']:.0f} | {g['peak_mb']:.1f} | "
                     f"{q['peak_mb']:.1f} | {a['chunks'] or '—'} | "
                     f"{b['workers']} / {a['workers']} / {o['workers']} / {g['workers']} / {q['workers']} | "
                     f"{b['wall_s']:.1f} / {a['wall_s']:.1f} / {o['wall_s']:.1f} / {g['wall_s']:.1f} / {q['wall_s']:.1f} | "
                     f"{'yes' if same else 'no'} |")
    text = "\n".join(lines)
    print(text)
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "long_file_memory.md").write_text(f"{time.strftime('%Y-%m-%d')}\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
