"""GIL release and parallel states of one model."""

from __future__ import annotations

import threading
import time

import pytest

import whisperx_native as wn
from whisperx_native import _native
from _util import JFK_TEXT, normalize


def _spin_until(done: threading.Event) -> float:
    """Pure-Python loop iterations per second until ``done`` (needs the GIL every step)."""
    n, t0 = 0, time.perf_counter()
    while not done.is_set():
        n += 1
    return n / (time.perf_counter() - t0)


def _rate_ratio_during_transcription(m, samples) -> float:
    idle_done = threading.Event()
    threading.Timer(1.0, idle_done.set).start()
    idle_rate = _spin_until(idle_done)  # the same loop, nothing else of ours running
    done = threading.Event()
    window = {}

    def work():
        window["t0"] = time.perf_counter()
        m.transcribe(samples, preset="fast")
        window["t1"] = time.perf_counter()
        done.set()

    t = threading.Thread(target=work)
    t.start()
    time.sleep(0.3)  # let the native run start
    busy_rate = _spin_until(done)
    t.join()
    assert window["t1"] - window["t0"] > 1.0, "transcription too short to measure"
    return busy_rate / idle_rate


def test_gil_is_released_during_transcription(tiny_en_ggml, long_samples):
    # One inference thread on a 2-core machine leaves a core for the counting thread. A
    # held GIL would stop the counting thread for the whole run (ratio near 0) in every
    # attempt; other load on a shared machine only dents single attempts, so up to three.
    ratios = []
    with wn.Model(tiny_en_ggml, n_threads=1) as m:
        while len(ratios) < 3 and (not ratios or max(ratios) < 0.8):
            ratios.append(_rate_ratio_during_transcription(m, long_samples))
    print(f"python thread ran at {', '.join(f'{r:.0%}' for r in ratios)} of its idle rate during transcription")
    assert max(ratios) >= 0.8


def test_two_states_of_one_model_run_at_the_same_time(tiny_en_ggml, jfk_samples):
    ctx = _native.Context(str(tiny_en_ggml))
    opts = wn.DecodeOptions(n_threads=1, beam_size=1, language="en", temperature_increment=0.0)
    states = [ctx.new_state(), ctx.new_state()]
    spans, texts = {}, {}
    barrier = threading.Barrier(2)

    def work(i):
        barrier.wait()
        t0 = time.perf_counter()
        raw = states[i].full(jfk_samples, opts)
        spans[i] = (t0, time.perf_counter())
        texts[i] = "".join(s[2] for s in raw["segments"])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        assert normalize(texts[i]) == normalize(JFK_TEXT)
    overlap = min(spans[0][1], spans[1][1]) - max(spans[0][0], spans[1][0])
    shortest = min(spans[0][1] - spans[0][0], spans[1][1] - spans[1][0])
    assert overlap > 0.5 * shortest, "the two runs did not overlap: something serialised them"
    for s in states:
        s.close()
    ctx.close()


def test_one_state_is_never_entered_twice(tiny_en_ggml, long_samples):
    ctx = _native.Context(str(tiny_en_ggml))
    st = ctx.new_state()
    opts = wn.DecodeOptions(n_threads=1, beam_size=1, language="en", temperature_increment=0.0)
    started = threading.Event()
    outcome = []

    def work():
        try:
            st.full(long_samples, opts, on_progress=lambda p: started.set())
        except wn.Cancelled as exc:
            outcome.append(exc)

    t = threading.Thread(target=work)
    t.start()
    assert started.wait(60)
    with pytest.raises(wn.BusyError):
        st.full(long_samples, opts)
    with pytest.raises(wn.BusyError):
        st.close()
    st.cancel()
    t.join()
    assert outcome and isinstance(outcome[0], wn.Cancelled)
    st.close()
    ctx.close()


def test_model_threads_share_one_model(tiny, jfk_samples):
    results = [None] * 4

    def work(i):
        results[i] = tiny.transcribe(jfk_samples, preset="fast", n_threads=1).text

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(normalize(r) == normalize(JFK_TEXT) for r in results)
