"""Benchmark fixtures: the model, the audio, and whisper-cli built from our vendored source.

Run: ``pytest bench/ --benchmark-only`` (after ``pip install ".[bench]"``). The report
(markdown + JSON) lands in ``bench/results/``.
"""

from __future__ import annotations

import json
import os
import platform
import re
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

# Rows collected by the benchmarks, written out at the end of the session.
ROWS: list = []


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
    return {
        "short": (short_wav, short_ref),
        "jfk": (speech.JFK_WAV, speech.JFK_TEXT),
        "long": (long_wav, long_ref),
    }


@pytest.fixture(scope="session")
def whisper_cli():
    """whisper-cli compiled by our CMakeLists.txt from the same whisper/ggml targets (same flags)."""
    exe = CLI_BUILD / "whisper-cli"
    if not exe.exists():
        cfg = ["cmake", "-S", str(REPO), "-B", str(CLI_BUILD), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
               "-DWHISPERX_BUILD_CLI=ON", f"-DPython_EXECUTABLE={sys.executable}"]
        subprocess.run(cfg, check=True, capture_output=True)
        subprocess.run(["cmake", "--build", str(CLI_BUILD), "--target", "whisper-cli"], check=True,
                       capture_output=True)
    return exe


_TOTAL = re.compile(r"total time =\s+([0-9.]+) ms")
_LOAD = re.compile(r"load time =\s+([0-9.]+) ms")
_STAMP = re.compile(r"^\[[0-9:.]+ --> [0-9:.]+\]")


def cli_command(exe, model, wav, threads, extra=()):
    """whisper-cli with timestamps on (as ours), English; its timing report goes to stderr."""
    return [str(exe), "-m", str(model), "-f", str(wav), "-t", str(threads), "-l", "en", *extra]


def run_cli(exe, model, wav, threads, extra=()):
    """Run whisper-cli once: (transcript, process wall s, cpu s, inference ms = total - load)."""
    cmd = cli_command(exe, model, wav, threads, extra)
    t0 = time.perf_counter()
    r0 = os.times()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    r1 = os.times()
    cpu = (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)
    err = proc.stderr
    total, load = _TOTAL.search(err), _LOAD.search(err)
    infer_ms = float(total.group(1)) - float(load.group(1)) if total and load else float("nan")
    text = " ".join(_STAMP.sub("", line).strip() for line in proc.stdout.splitlines())
    return text, wall, cpu, infer_ms


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    from whisperx_native._textnorm import normalize

    return jiwer.wer(normalize(reference), normalize(hypothesis))


def pytest_sessionfinish(session, exitstatus):
    if not ROWS:
        return
    out = Path(session.config.getoption("--bench-report"))
    out.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
            f"{platform.processor() or platform.platform()}", "threads": THREADS}
    (out / "bench.json").write_text(json.dumps({"meta": meta, "rows": ROWS}, indent=2))
    lines = [f"Measured {meta['date']} on {meta['machine']}, {THREADS} threads, tiny.en f16, greedy, "
             "no temperature fallback, timestamps on.", "",
             "| workload | runner | median wall s | cpu s | peak RSS MB | WER | ratio |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in ROWS:
        lines.append(f"| {r['workload']} | {r['runner']} | {r['wall_s']:.3f} | {r.get('cpu_s', float('nan')):.2f} | "
                     f"{r.get('rss_mb', float('nan')):.0f} | {r.get('wer', float('nan')):.3f} | {r.get('ratio', '')} |")
    (out / "bench.md").write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))
