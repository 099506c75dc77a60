"""Model.transcribe_iter: segments arrive while whisper.cpp is still working."""

from __future__ import annotations

import threading
import time

import jiwer
import numpy as np
import pytest

import whisperx_native as wn
from _util import JFK_TEXT, normalize


def test_segments_arrive_before_the_run_ends(tiny, long_samples):
    # ~100 s: three chunks of speech, transcribed two at a time on this machine's two cores
    long_samples = np.concatenate([long_samples, long_samples])
    arrivals = []
    t0 = time.perf_counter()
    with tiny.transcribe_iter(long_samples, preset="fast") as segments:
        for seg in segments:
            arrivals.append((time.perf_counter() - t0, seg))
    done = time.perf_counter() - t0
    result = segments.result
    assert isinstance(result, wn.Result)
    assert [s.text for _, s in arrivals] == [s.text for s in result.segments]
    assert [(s.start, s.end) for _, s in arrivals] == [(s.start, s.end) for s in result.segments]
    # the first chunk's segments come well before the end
    assert arrivals[0][0] < 0.8 * done, (arrivals[0][0], done)
    # every repeat transcribed (greedy on tiny.en may slip one word of the 176)
    assert jiwer.wer(normalize(" ".join([JFK_TEXT] * 8)), normalize(result.text)) < 0.02
    assert result.timings["audio_seconds"] == pytest.approx(long_samples.size / 16000)


def test_full_result_keeps_tokens_and_words(tiny, jfk_samples):
    it = tiny.transcribe_iter(jfk_samples, token_timestamps=True)
    streamed = list(it)
    assert streamed and all(s.tokens == [] for s in streamed)
    assert all(s.tokens and s.words for s in it.result.segments)
    assert list(it) == []          # exhausted stays exhausted


def test_closing_early_cancels_the_run_and_frees_the_state(tiny, long_samples):
    # three chunks of speech, one after the other: the first one's segments come early
    long_samples = np.concatenate([long_samples, long_samples])
    full = tiny.transcribe(long_samples, preset="fast", chunk_workers=1).timings["total_ms"] / 1000
    t0 = time.perf_counter()
    with tiny.transcribe_iter(long_samples, preset="fast", chunk_workers=1) as segments:
        first = next(segments)
    stopped = time.perf_counter() - t0
    assert first.text.strip()
    assert segments.result is None
    assert stopped < full, (stopped, full)
    assert not [t for t in threading.enumerate() if t.name == "whisperx_native-transcribe"]
    # The state went back to the pool in a usable state: the next call runs normally.
    assert normalize(tiny.transcribe(long_samples[:16000 * 11], preset="fast").text) == normalize(JFK_TEXT)


def test_errors_are_raised_from_the_loop(tiny, tmp_path):
    with pytest.raises(wn.AudioError, match="missing.wav"):
        for _ in tiny.transcribe_iter(tmp_path / "missing.wav"):
            pass
    with pytest.raises(ValueError, match="English-only"):
        list(tiny.transcribe_iter(np.zeros(16000, np.float32), language="de"))


def test_progress_callback_still_works(tiny, jfk_samples):
    seen = []
    it = tiny.transcribe_iter(jfk_samples, preset="fast", progress_callback=seen.append)
    list(it)
    assert seen and seen == sorted(seen) and seen[-1] <= 100
