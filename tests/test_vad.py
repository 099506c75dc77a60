"""Silero VAD through the Cython layer (VadContext) and the streaming policy (StreamingVad)."""

from __future__ import annotations

import numpy as np
import pytest

from whisperx_native._native import VadContext
from whisperx_native.errors import AudioError, BusyError, ClosedError, ModelError, OptionError
from whisperx_native.realtime import StreamingVad, default_vad_model, validate_vad_model
from whisperx_native.vad import load_vad

SR = 16000


@pytest.fixture(scope="module")
def vad():
    ctx, info = load_vad()
    yield ctx
    ctx.close()


def test_model_header_is_checked_before_native_load(tmp_path):
    info = validate_vad_model(default_vad_model())
    assert info.model_type == "silero-16k" and info.version == "6.2.0" and info.frame_samples == 512
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not a model at all" * 10)
    with pytest.raises(ModelError, match="bad magic"):
        validate_vad_model(bad)
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(default_vad_model().read_bytes()[:4096])
    with pytest.raises(ModelError, match="truncated"):
        validate_vad_model(truncated)
    with pytest.raises(ModelError):
        validate_vad_model(tmp_path / "missing.bin")


def test_probabilities_one_per_frame_speech_vs_silence(vad, jfk_samples):
    probs = vad.detect(jfk_samples)
    assert probs.dtype == np.float32 and probs.size == -(-jfk_samples.size // 512)
    assert vad.detect(np.zeros(SR * 2, np.float32)).max() < 0.1
    # jfk: speech between ~0.3 s and ~10.6 s, most frames there are speech
    t = np.arange(probs.size) * 512 / SR
    assert probs[(t > 0.5) & (t < 2.0)].mean() > 0.8
    assert probs[t < 0.2].max() < 0.5


def test_streaming_state_carries_over_chunks(vad, jfk_samples):
    x = jfk_samples[: jfk_samples.size // 512 * 512]
    whole = vad.detect(x)
    vad.reset()
    chunked = np.concatenate([vad.detect(x[i:i + 512 * 7], reset=False) for i in range(0, x.size, 512 * 7)])
    np.testing.assert_array_equal(chunked, whole)


def test_fresh_context_starts_from_a_clean_state(jfk_samples):
    """A new context's LSTM state is zeroed: no-reset detection is reproducible."""
    x = jfk_samples[:512 * 40]
    runs = []
    for _ in range(3):
        ctx, _ = load_vad()
        with ctx:
            runs.append(ctx.detect(x, reset=False))
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[1], runs[2])


def test_segments_of_jfk(vad, jfk_samples):
    segs = vad.segments(jfk_samples)
    assert 3 <= len(segs) <= 6
    assert segs[0][0] < 0.6 and segs[-1][1] > 10.0
    assert all(a < b for a, b in segs)
    assert vad.segments(np.zeros(SR, np.float32)) == []


def test_segments_from_block_fed_probabilities_equal_one_call(vad, jfk_samples):
    """Patch 0013: a stream fed block by block (a long file never held whole) segments
    exactly as one call over all the samples, the last partial frame included."""
    x = np.concatenate([jfk_samples, np.zeros(SR // 3, np.float32), jfk_samples[: SR * 4 + 100]])
    for params in ({}, {"min_silence_ms": 160, "speech_pad_ms": 400, "max_speech_s": 5.0}):
        whole = vad.segments(x, **params)
        blocks = [vad.detect(x[i:i + 512 * 9], reset=i == 0) for i in range(0, x.size, 512 * 9)]
        probs = np.concatenate(blocks)
        assert probs.size == -(-x.size // 512)
        assert len(whole) >= 4 and vad.segments_from_probs(probs, **params) == whole
    assert vad.segments_from_probs(np.zeros(0, np.float32)) == []
    assert vad.segments_from_probs(np.zeros(100, np.float32)) == []
    with pytest.raises(AudioError, match="finite"):
        vad.segments_from_probs(np.array([0.5, np.nan], np.float32))
    with pytest.raises(OptionError, match="threshold"):
        vad.segments_from_probs(probs, threshold=2.0)


def test_lifecycle_close_once_and_use_after_close(jfk_samples):
    ctx, _ = load_vad()
    assert not ctx.closed
    ctx.close()
    ctx.close()
    assert ctx.closed
    with pytest.raises(ClosedError):
        ctx.detect(jfk_samples)
    with pytest.raises(ClosedError):
        ctx.reset()
    with pytest.raises(ModelError):
        VadContext(__file__)


def test_busy_from_a_second_thread(jfk_samples):
    import threading

    ctx, _ = load_vad()
    long = np.tile(jfk_samples, 20)
    started = threading.Event()

    def run():
        started.set()
        ctx.detect(long)

    t = threading.Thread(target=run)
    t.start()
    started.wait()
    seen_busy = False
    while t.is_alive():
        try:
            ctx.detect(jfk_samples[:512])
        except BusyError:
            seen_busy = True
        try:
            ctx.close()
        except BusyError:
            pass
    t.join()
    ctx.close()
    assert seen_busy, "the GIL was not released during detection, or no lock guards the context"


def test_streaming_vad_boundaries(jfk_samples):
    pause = np.zeros(SR * 2, np.float32)
    x = np.concatenate([pause, jfk_samples, pause])
    with StreamingVad(min_silence_ms=500, speech_pad_ms=200) as v:
        bounds = []
        rng = np.random.default_rng(0)
        i = 0
        while i < x.size:
            n = int(rng.integers(100, 5000))
            bounds += v.feed(i, x[i:i + n])
            i += n
    kinds = [b.kind for b in bounds]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert all(a != b for a, b in zip(kinds, kinds[1:]))   # alternate start/end
    assert abs(bounds[0].sample / SR - 2.3) < 0.4           # jfk's first word, padded
    assert abs(bounds[-1].sample / SR - 12.7) < 0.5
    samples = [b.sample for b in bounds]
    assert samples == sorted(samples)


def test_speech_end_when_the_stream_closes(jfk_samples):
    """jfk.wav ends 0.4 s after the last word on a breath that Silero scores as speech (one
    frame): closed there, the speech ends where the pause before the breath began, plus the
    padding; a breath counted as speech (min_speech 0) runs to the end."""
    with StreamingVad(min_silence_ms=500, speech_pad_ms=200) as v:
        v.feed(0, jfk_samples)
        assert v.in_speech and v._silent_since is None    # the last frame is speech
        end = v.end_if_closed(min_speech=int(0.2 * SR))
        assert end is not None and 10.5 * SR < end < jfk_samples.size - 0.1 * SR, end / SR
        assert v.end_if_closed(min_speech=0) is None
        # in a pause that goes on, the speech ends where it began (plus the padding)
        v.feed(jfk_samples.size, np.zeros(SR // 5, np.float32))
        assert v.end_if_closed(min_speech=0) == v._silent_since + v.pad
    with StreamingVad() as v:
        v.feed(0, np.zeros(SR, np.float32))
        assert v.end_if_closed(min_speech=0) is None       # not in speech
