"""Calls use only the cores other processes leave free.

whisper.cpp's threads meet at a spinning barrier after every graph node. With a busy
process beside a 2-thread run on 2 cores, one thread keeps waiting for a core while the
other spins: the run took 3x (encoder) to 20x (decoder) the time of a 1-thread run here.
So a Model checks the runnable tasks at the start of each call (threads.busy_cores) and
drops to the free cores. A fake reader checks the arithmetic; a real busy process checks
the signal itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import whisperx_native as wn
from whisperx_native import threads
from _util import normalize

JFK = "ask not what your country can do for you"


def test_threads_for_load_arithmetic() -> None:
    assert threads.threads_for_load(2, None, 2) == 2      # unknown load: as asked
    assert threads.threads_for_load(2, 0, 2) == 2
    assert threads.threads_for_load(2, 1, 2) == 1
    assert threads.threads_for_load(4, 5, 2) == 1         # never below one
    assert threads.threads_for_load(4, 2, 8) == 4         # enough free cores
    assert threads.threads_for_load(4, 6, 8) == 2
    assert threads.threads_for_load(1, 3, 2) == 1


def test_busy_cores_reads_the_minimum(monkeypatch, tmp_path) -> None:
    reads = iter(["0.5 0.4 0.3 3/200 1\n", "0.5 0.4 0.3 2/200 1\n", "0.5 0.4 0.3 4/200 1\n"])
    fake = tmp_path / "loadavg"

    real_open = open

    def fake_open(path, *a, **k):
        if path == str(fake):
            fake.write_text(next(reads))
        return real_open(path, *a, **k)

    monkeypatch.setattr(threads, "_LOADAVG", str(fake))
    monkeypatch.setattr("builtins.open", fake_open)
    assert threads.busy_cores(reads=3, gap_s=0) == 1       # min(3, 2, 4) minus the caller
    monkeypatch.setattr(threads, "_LOADAVG", str(tmp_path / "missing"))
    assert threads.busy_cores() is None                    # no /proc: no adaptation


def test_model_uses_the_free_cores(monkeypatch, tiny_en_ggml, jfk_samples) -> None:
    cores = threads.machine_cores()  # /proc/loadavg counts the whole machine
    if threads.cpu_count() < 2:
        pytest.skip("needs 2 cores")
    monkeypatch.setattr("whisperx_native.threads.busy_cores", lambda: cores - 1)
    with wn.Model(tiny_en_ggml) as m:  # the default count (2 here) adapts to the load
        r = m.transcribe(jfk_samples, preset="fast", language="en")
        assert r.timings["n_threads"] == 1 and JFK in normalize(r.text)
        # a count the caller gives is used as given
        assert m.transcribe(jfk_samples, preset="fast", language="en", n_threads=2).timings["n_threads"] == 2
        m.adapt_threads = False
        assert m.transcribe(jfk_samples, preset="fast", language="en").timings["n_threads"] == 2
    with wn.Model(tiny_en_ggml, n_threads=2) as m:
        assert m.transcribe(jfk_samples, preset="fast", language="en").timings["n_threads"] == 2
    monkeypatch.setattr("whisperx_native.threads.busy_cores", lambda: 0)
    with wn.Model(tiny_en_ggml) as m:
        assert m.transcribe(jfk_samples, preset="fast", language="en").timings["n_threads"] == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/loadavg")
def test_a_real_busy_process_is_seen_and_avoided(tiny_en_ggml, jfk_samples) -> None:
    cores = threads.machine_cores()  # /proc/loadavg counts the whole machine
    if threads.cpu_count() < 2:
        pytest.skip("needs 2 cores")
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores - 1)]
    try:
        time.sleep(0.5)
        assert threads.busy_cores() >= cores - 1
        with wn.Model(tiny_en_ggml) as m:
            r = m.transcribe(jfk_samples, preset="fast", language="en")
        assert r.timings["n_threads"] == 1
        assert JFK in normalize(r.text)
    finally:
        for p in spinners:
            p.kill()
            p.wait()


def test_core_counts_follow_the_affinity_mask(monkeypatch) -> None:
    """taskset / a container's cpuset: the cores this process may use, not the machine's."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert threads.cpu_count() == 1 and threads.default_threads() == 1 and threads.clamp(8) == 1
    assert threads.machine_cores() == 64  # what /proc/loadavg is compared with
    assert wn.DecodeOptions().n_threads == 0 and wn.options.default_threads() == 1
    monkeypatch.delattr(os, "sched_getaffinity")  # macOS, Windows: all the cores
    assert threads.cpu_count() == 64 and threads.default_threads() == threads.DEFAULT_THREADS


def test_core_counts_have_one_source() -> None:
    """Only threads.py asks the OS how many cores there are."""
    import pathlib
    import re

    root = pathlib.Path(threads.__file__).parent
    asking = re.compile(r"\b(os\.cpu_count|psutil\.cpu_count|sched_getaffinity|multiprocessing\.cpu_count)\(")
    found = [f"{p.relative_to(root)}:{i}" for p in sorted(root.rglob("*.py")) if p.name != "threads.py"
             for i, line in enumerate(p.read_text().splitlines(), 1) if asking.search(line)]
    found += [f"_native/{p.name}" for p in (root / "_native").glob("*.p*x*") if asking.search(p.read_text())]
    assert not found, found
