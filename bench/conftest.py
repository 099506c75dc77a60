"""Benchmark fixtures: the model, the audio, and whisper-cli built from our vendored source.

Run: ``pip install ".[bench]" && pytest bench/test_bench.py -s``. The report (markdown +
JSON) lands in ``bench/results/``. The long file is synthesised with Debian's espeak-ng
and sox (``apt-get install espeak-ng sox``).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import speech  # noqa: E402

CACHE = Path(os.environ.get("WHISPERX_NATIVE_BENCH_CACHE", REPO / "build" / "bench-cache"))
CLI_BUILD = REPO / "build" / "whisper-cli"
THREADS = int(os.environ.get("WHISPERX_NATIVE_BENCH_THREADS", "2"))

# Rows collected by the benchmarks and the target ratios computed from them, written out
# at the end of the session: (what, value, target).
ROWS: list = []
RATIOS: list = []


def pytest_addoption(parser):
    parser.addoption("--bench-report", default=str(HERE / "results"), help="where to write the report")


@pytest.fixture(scope="session")
def tiny_en_path():
    from whisperx_native.models.store import resolve_model_path

    return resolve_model_path("tiny.en", cache=CACHE / "models")


@pytest.fixture(scope="session")
def audio():
    long_wav, long_ref = speech.build_long_speech(CACHE)
    short_wav, short_ref = speech.build_short_utterance(CACHE)
    files = {
        "short": (short_wav, short_ref),
        "jfk": (speech.JFK_WAV, speech.JFK_TEXT),
        "long": (long_wav, long_ref),
    }
    files["samples"] = {k: speech.read_audio(v[0]) for k, v in files.items()}
    return files


@pytest.fixture(scope="session")
def whisper_cli():
    """whisper-cli compiled by our CMakeLists.txt from the same whisper/ggml targets (same flags)."""
    exe = CLI_BUILD / "whisper-cli"
    # Configure and build every time (a no-op when up to date), so the flags follow CMakeLists.txt.
    cfg = ["cmake", "-S", str(REPO), "-B", str(CLI_BUILD), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
           "-DWHISPERX_BUILD_CLI=ON", f"-DPython_EXECUTABLE={sys.executable}"]
    subprocess.run(cfg, check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(CLI_BUILD), "--target", "whisper-cli"], check=True,
                   capture_output=True)
    return exe


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    from speech import normalize

    return jiwer.wer(normalize(reference), normalize(hypothesis))


def pytest_sessionfinish(session, exitstatus):
    if not ROWS:
        return
    out = Path(session.config.getoption("--bench-report"))
    out.mkdir(parents=True, exist_ok=True)
    cpu = platform.processor() or platform.platform()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores, {cpu}",
            "threads": THREADS, "model": "tiny.en", "settings": "English, greedy (beam 1, best_of 1), temperature 0 "
            "without fallback, no conditioning on previous text, timestamps on"}
    (out / "bench.json").write_text(json.dumps({"meta": meta, "rows": ROWS,
                                                "ratios": [dict(what=w, value=v, target=t) for w, v, t in RATIOS]},
                                               indent=2))

    def num(v, fmt):
        return "" if v is None or v != v else format(v, fmt)

    lines = [f"Measured {meta['date']} on {meta['machine']}; {THREADS} threads; tiny.en; {meta['settings']}.", "",
             "| workload | runner | median wall s | cpu s | peak RSS MB | WER | note |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in ROWS:
        lines.append(f"| {r['workload']} | {r['runner']} | {num(r.get('wall_s'), '.3f')} | {num(r.get('cpu_s'), '.2f')} | "
                     f"{num(r.get('rss_mb'), '.0f')} | {num(r.get('wer'), '.3f')} | {r.get('note', '')} |")
    if RATIOS:
        lines += ["", "| ratio (same run) | value | target |", "|---|---:|---|"]
        lines += [f"| {w} | {v:.3f} | {t} |" for w, v, t in RATIOS]
    (out / "bench.md").write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))
