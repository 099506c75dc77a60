"""Speed against whisper-cli built from the same source with the same flags.

Both run tiny.en (converted from the CTranslate2 weights), greedy decoding, no
temperature fallback, timestamps on, full 30 s encoder context, the same threads.
Ours is timed in process with the model loaded once (``Model.transcribe``);
whisper-cli is timed as a process, and its own "total - load" time is kept too, so
the binding-overhead ratio compares inference with inference.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import ROWS, THREADS, cli_command, run_cli, wer

import whisperx_native as wn

ROUNDS = {"short": 10, "jfk": 10, "long": 3}
OPTS = dict(preset="fast", audio_ctx=0, language="en")  # greedy, no fallback, full encoder context
CLI_GREEDY = ("-bs", "1", "-bo", "1", "-nf")  # the same settings for whisper-cli
_ours: dict = {}
_cli: dict = {}


def _peak_rss_mb(cmd) -> float:
    """Peak RSS of one child process (wait4 gives that child's own rusage)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir())
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, cmd
    return usage.ru_maxrss / 1024.0


@pytest.mark.parametrize("workload", ["short", "jfk", "long"])
def test_ours(benchmark, tiny_en_path, audio, workload):
    wav, ref = audio[workload]
    samples = wn.read_wav(wav)
    cpu = []
    with wn.Model(tiny_en_path, n_threads=THREADS) as model:
        def run():
            c0 = time.process_time()
            r = model.transcribe(samples, **OPTS)
            cpu.append(time.process_time() - c0)
            return r

        result = benchmark.pedantic(run, rounds=ROUNDS[workload], iterations=1, warmup_rounds=1)
    code = (f"import whisperx_native as wn; m = wn.Model({str(tiny_en_path)!r}, n_threads={THREADS}); "
            f"m.transcribe({str(wav)!r}, **{OPTS!r})")
    row = dict(workload=workload, runner="whisperx_native", wall_s=benchmark.stats.stats.median,
               cpu_s=statistics.median(cpu), rss_mb=_peak_rss_mb([sys.executable, "-c", code]),
               wer=wer(ref, result.text))
    _ours[workload] = row
    ROWS.append(row)


@pytest.mark.parametrize("workload", ["short", "jfk", "long"])
def test_whisper_cli(benchmark, whisper_cli, tiny_en_path, audio, workload):
    wav, ref = audio[workload]
    runs = []

    def run():
        runs.append(run_cli(whisper_cli, tiny_en_path, wav, THREADS, CLI_GREEDY))

    benchmark.pedantic(run, rounds=ROUNDS[workload], iterations=1, warmup_rounds=1)
    text = runs[-1][0]
    infer_s = statistics.median(r[3] for r in runs) / 1000
    cmd = cli_command(whisper_cli, tiny_en_path, wav, THREADS, CLI_GREEDY)
    row = dict(workload=workload, runner="whisper-cli (process)", wall_s=benchmark.stats.stats.median,
               cpu_s=statistics.median(r[2] for r in runs), rss_mb=_peak_rss_mb(cmd), wer=wer(ref, text))
    _cli[workload] = dict(row, infer_s=infer_s)
    ROWS.append(row)
    ROWS.append(dict(workload=workload, runner="whisper-cli (total - load)", wall_s=infer_s, wer=row["wer"]))


def test_zz_ratios():
    """Binding overhead: ours / whisper-cli inference (target <= 1.02)."""
    for workload in ("short", "jfk", "long"):
        if workload in _ours and workload in _cli:
            ours, cli = _ours[workload], _cli[workload]
            ROWS.append(dict(workload=workload, runner="ratio ours / cli", wall_s=ours["wall_s"] / cli["infer_s"],
                             ratio=f"{ours['wall_s'] / cli['infer_s']:.3f} vs cli inference, "
                                   f"{ours['wall_s'] / cli['wall_s']:.3f} vs cli process"))


def test_import_time(benchmark):
    """``python -c "import whisperx_native"`` against a bare interpreter start."""
    def once(code):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=tempfile.gettempdir())
        return time.perf_counter() - t0

    base = statistics.median(once("pass") for _ in range(15))
    benchmark.pedantic(once, args=("import whisperx_native",), rounds=15, iterations=1)
    full = benchmark.stats.stats.median
    ROWS.append(dict(workload="import", runner="python -c 'import whisperx_native'", wall_s=full,
                     ratio=f"{(full - base) * 1000:.1f} ms over a bare interpreter ({base * 1000:.1f} ms)"))
