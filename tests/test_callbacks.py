"""Progress / new-segment callbacks, exceptions inside them, and cancellation."""

from __future__ import annotations

import threading
import time

import pytest

import whisperx_native as wn
from _util import JFK_TEXT, normalize


def test_progress_and_segment_callbacks(tiny, long_samples):
    progress, segments = [], []
    result = tiny.transcribe(long_samples, preset="fast", progress_callback=progress.append,
                             segment_callback=segments.append)
    assert progress == sorted(progress) and progress[-1] >= 90
    assert [s.text for s in segments] == [s.text for s in result.segments]
    assert all(isinstance(s, wn.Segment) for s in segments)


class Boom(Exception):
    pass


def test_exception_in_a_callback_surfaces_and_the_model_survives(tiny, long_samples, jfk_samples):
    def bad(_segment):
        raise Boom("from the callback")

    with pytest.raises(Boom, match="from the callback"):
        tiny.transcribe(long_samples, preset="fast", segment_callback=bad)
    with pytest.raises(ZeroDivisionError):
        tiny.transcribe(long_samples, preset="fast", progress_callback=lambda p: 1 / 0)
    # the state went back to the pool intact
    assert normalize(tiny.transcribe(jfk_samples, preset="fast").text) == normalize(JFK_TEXT)


def test_cancel_from_another_thread(tiny_en_ggml, long_samples, jfk_samples):
    with wn.Model(tiny_en_ggml, n_threads=1) as m:
        started = threading.Event()
        box = {}

        def work():
            try:
                box["result"] = m.transcribe(long_samples, progress_callback=lambda p: started.set())
            except BaseException as exc:  # noqa: BLE001 - the test inspects it
                box["error"] = exc

        t = threading.Thread(target=work)
        t.start()
        assert started.wait(120)
        t_cancel = time.perf_counter()
        m.cancel()
        t.join(120)
        assert not t.is_alive()
        assert isinstance(box.get("error"), wn.Cancelled), box
        stop_s = time.perf_counter() - t_cancel
        # and the model still works afterwards
        assert normalize(m.transcribe(jfk_samples, preset="fast").text) == normalize(JFK_TEXT)
    print(f"cancel took effect after {stop_s:.2f} s")
