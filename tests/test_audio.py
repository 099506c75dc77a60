"""Bad audio gets a clear AudioError; good WAV variants read right."""

from __future__ import annotations

import struct
import wave

import numpy as np
import pytest

import whisperx_native as wn
from whisperx_native.audio import MAX_SECONDS


@pytest.mark.parametrize("audio, match", [
    (np.zeros((16000, 2), np.float32), "1-D"),
    (np.zeros(0, np.float32), "empty"),
    (np.array([0.0, np.nan] * 8000, np.float32), "NaN"),
    (np.array([0.0, np.inf] * 8000, np.float64), "NaN/Inf"),
    (np.zeros(16000, np.int32), "dtype"),
    (np.zeros(16000, np.complex64), "dtype"),
    (b"\x00\x01" * 100, "bytes"),
])
def test_bad_arrays(audio, match):
    with pytest.raises(wn.AudioError, match=match):
        wn.as_samples(audio)


def test_absurdly_long_audio_is_refused_before_any_copy():
    huge = np.broadcast_to(np.zeros(1, np.float32), (MAX_SECONDS * 16000 + 1,))
    with pytest.raises(wn.AudioError, match="limit"):
        wn.as_samples(huge)


def test_wrong_sample_rate_for_arrays():
    with pytest.raises(wn.AudioError, match="44100"):
        wn.as_samples(np.zeros(44100, np.float32), sample_rate=44100)


def test_audio_error_is_a_value_error():
    assert issubclass(wn.AudioError, ValueError) and issubclass(wn.AudioError, wn.WhisperError)


def _wav(path, data: bytes, *, rate=16000, channels=1, width=2):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data)
    return path


def _float_wav(path, samples: np.ndarray, rate=16000):
    data = samples.astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def test_wav_pcm16_and_float32_read_the_same(tmp_path):
    x = (np.sin(np.arange(16000) / 10) * 0.5).astype(np.float32)
    pcm = _wav(tmp_path / "a.wav", (x * 32767).astype("<i2").tobytes())
    flt = _float_wav(tmp_path / "b.wav", x)
    a, b = wn.read_wav(pcm), wn.read_wav(flt)
    assert a.dtype == b.dtype == np.float32
    np.testing.assert_allclose(a, x, atol=1e-4)
    np.testing.assert_array_equal(b, x)


@pytest.mark.parametrize("kwargs, match", [
    (dict(rate=44100), "44100"),
    (dict(channels=2), "channels"),
    (dict(width=1), "8-bit"),
    (dict(width=3), "24-bit"),
])
def test_unsupported_wav_variants(tmp_path, kwargs, match):
    path = _wav(tmp_path / "x.wav", b"\x00" * 48000, **kwargs)
    with pytest.raises(wn.AudioError, match=match):
        wn.read_wav(path)


def test_not_a_wav_missing_truncated_and_empty(tmp_path):
    (tmp_path / "text.wav").write_text("hello")
    with pytest.raises(wn.AudioError, match="not a WAV"):
        wn.read_wav(tmp_path / "text.wav")
    with pytest.raises(wn.AudioError, match="cannot open"):
        wn.read_wav(tmp_path / "missing.wav")
    good = _wav(tmp_path / "g.wav", b"\x01\x00" * 1000).read_bytes()
    (tmp_path / "trunc.wav").write_bytes(good[:30])
    with pytest.raises(wn.AudioError):
        wn.read_wav(tmp_path / "trunc.wav")
    _wav(tmp_path / "empty.wav", b"")
    with pytest.raises(wn.AudioError, match="no samples"):
        wn.read_wav(tmp_path / "empty.wav")


def test_float_wav_with_nan_is_refused(tmp_path):
    x = np.zeros(1600, np.float32)
    x[5] = np.nan
    with pytest.raises(wn.AudioError, match="NaN"):
        wn.read_wav(_float_wav(tmp_path / "nan.wav", x))
