"""Transcription beside a busy process: more threads than free cores (patch 0023).

    python bench/busy_machine.py              # about 2 minutes on 2 cores

whisper.cpp's threads meet at a barrier after every graph node. On a machine whose cores are
all taken by other work, a thread waiting there used to spin on a core the thread it waited
for needed. ``Model(adapt_threads=True)`` (the default) avoids it by counting busy cores at the
start of a call; this bench measures what happens when it cannot (the load starts mid-call, or
``n_threads`` is given with ``adapt_threads=False``).

For jfk.wav and the first 29 s of bench/corpus.py's long_a, each in a fresh process, tiny.en,
default decoding, best of 3 transcriptions after a warm-up: 2 threads alone, 2 threads beside
one busy process per core but one (``while True: pass``), and 1 thread beside the same.
Prints a Markdown table and writes bench/results/busy_machine.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402
from speech import JFK_WAV  # noqa: E402

CACHE = corpus.CACHE

CHILD = """
import json, sys, time
import whisperx_native as wn
m = wn.Model("tiny.en", n_threads=int(sys.argv[2]), adapt_threads=False)
m.transcribe(sys.argv[1])  # warm-up: load, first allocations
walls, texts = [], set()
for _ in range(3):
    t = time.perf_counter()
    texts.add(m.transcribe(sys.argv[1]).text)
    walls.append(time.perf_counter() - t)
print(json.dumps({"wall": min(walls), "texts": sorted(texts)}))
"""


def run(path: Path, n_threads: int, busy: int) -> dict:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        time.sleep(0.5 if busy else 0)
        out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(n_threads)], capture_output=True,
                             text=True, check=True, cwd=tempfile.gettempdir())
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    import numpy as np
    import soundfile as sf

    busy = max(1, (os.cpu_count() or 2) - 1)
    wav, _ = corpus.build_long(CACHE, "long_a", 1)
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "long_a_29s.wav"
        x, sr = sf.read(str(wav), dtype="float32")
        sf.write(str(clip), np.ascontiguousarray(x[: 29 * sr]), sr, subtype="FLOAT")
        rows = []
        for name, path in (("jfk.wav (11 s)", JFK_WAV), ("long_a, first 29 s", clip)):
            alone = run(path, 2, 0)
            loaded2 = run(path, 2, busy)
            loaded1 = run(path, 1, busy)
            same = alone["texts"] == loaded2["texts"] == loaded1["texts"] and len(alone["texts"]) == 1
            rows.append((name, alone["wall"], loaded2["wall"], loaded1["wall"], same))
            print(rows[-1], flush=True)
    lines = [f"# Beside {busy} busy process(es) ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, tiny.en, "
             "default decoding, best of 3)", "",
             "| audio | 2 threads alone | 2 threads, busy machine | 1 thread, busy machine | 2 threads busy / alone "
             "| 2 threads / 1 thread, busy | same text |", "|---|---:|---:|---:|---:|---:|---|"]
    for name, a, b2, b1, same in rows:
        lines.append(f"| {name} | {a:.2f} s | {b2:.2f} s | {b1:.2f} s | {b2 / a:.2f} | {b2 / b1:.2f} | "
                     f"{'yes' if same else 'no'} |")
    text = "\n".join(lines)
    print(text)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "busy_machine.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
