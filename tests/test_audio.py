"""Bad audio gets a clear AudioError; WAV variants (rates, channels, widths) read right."""

from __future__ import annotations

import struct
import wave

import numpy as np
import pytest

import whisperx_native as wn
from whisperx_native.audio import MAX_SECONDS, as_samples


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
    a, b = wn.load_audio(pcm), wn.load_audio(flt)
    assert a.dtype == b.dtype == np.float32
    np.testing.assert_allclose(a, x, atol=1e-4)
    np.testing.assert_array_equal(b, x)


@pytest.mark.parametrize("kwargs", [
    dict(rate=44100), dict(rate=8000), dict(channels=2), dict(width=1), dict(width=3), dict(width=4),
], ids=["44k", "8k", "stereo", "8bit", "24bit", "32bit"])
def test_wav_variants_decode_to_16k_mono(tmp_path, kwargs):
    rate, channels, width = kwargs.get("rate", 16000), kwargs.get("channels", 1), kwargs.get("width", 2)
    t = np.arange(rate) / rate                         # one second of a 440 Hz tone at 0.5
    x = 0.5 * np.sin(2 * np.pi * 440 * t)
    full = 2 ** (8 * width - 1)
    pcm = np.round(x * (full - 1)).astype(np.int64)
    if width == 1:
        pcm += 128                                     # 8-bit WAV is unsigned
    raw = np.repeat(pcm, channels).astype("<i8").view(np.uint8).reshape(-1, 8)[:, :width].tobytes()
    samples = wn.load_audio(_wav(tmp_path / "x.wav", raw, rate=rate, channels=channels, width=width))
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(samples.size - 16000) <= 2
    ref = (0.5 * np.sin(2 * np.pi * 440 * np.arange(samples.size) / 16000)).astype(np.float32)
    # Resampling is a filter: compare away from the edges.
    np.testing.assert_allclose(samples[200:-200], ref[200:-200], atol=0.02 if width == 1 else 2e-3)


def test_not_audio_missing_truncated_and_empty(tmp_path):
    (tmp_path / "text.wav").write_text("hello, this is not audio at all")
    with pytest.raises(wn.AudioError, match="text.wav: not a recognised audio"):
        wn.load_audio(tmp_path / "text.wav")
    with pytest.raises(wn.AudioError, match="cannot open"):
        wn.load_audio(tmp_path / "missing.wav")
    with pytest.raises(wn.AudioError, match="cannot open"):
        wn.load_audio(tmp_path)
    good = _wav(tmp_path / "g.wav", b"\x01\x00" * 1000).read_bytes()
    (tmp_path / "trunc.wav").write_bytes(good[:30])
    with pytest.raises(wn.AudioError, match="trunc.wav"):
        wn.load_audio(tmp_path / "trunc.wav")
    _wav(tmp_path / "empty.wav", b"")
    with pytest.raises(wn.AudioError, match="empty.wav: no samples"):
        wn.load_audio(tmp_path / "empty.wav")
    (tmp_path / "zero.wav").write_bytes(b"")
    with pytest.raises(wn.AudioError, match="zero.wav: the file is empty"):
        wn.load_audio(tmp_path / "zero.wav")


def test_float_wav_with_nan_is_refused(tmp_path):
    x = np.zeros(1600, np.float32)
    x[5] = np.nan
    with pytest.raises(wn.AudioError, match="NaN"):
        wn.load_audio(_float_wav(tmp_path / "nan.wav", x))


def test_one_rule_for_sample_types_and_channels():
    """as_samples, the capture ring's chunks, file decoding and the batch data path share
    audio.to_float32 / audio.downmix: the same numbers, the same refusals."""
    from whisperx_native.audio import downmix, to_float32
    from whisperx_native.batch.data import _resampled
    from whisperx_native.realtime.ringbuffer import to_mono_float32

    pcm = (np.arange(-1600, 1600, dtype=np.int64) * 20).astype(np.int16)
    want = pcm.astype(np.float32) / np.float32(32768.0)
    for x in (pcm, pcm.astype(">i2")):
        np.testing.assert_array_equal(as_samples(x), want)
        np.testing.assert_array_equal(to_mono_float32(x), want)
        np.testing.assert_array_equal(_resampled(x, 16000), want)
    stereo = np.stack([want, -want], axis=1)
    np.testing.assert_array_equal(to_mono_float32(stereo), downmix(stereo))
    assert not downmix(stereo).any() and to_float32(stereo).dtype == np.float32
    for convert in (as_samples, to_mono_float32, to_float32, lambda a: _resampled(a, 8000)):
        with pytest.raises(wn.AudioError, match="dtype int32"):
            convert(np.zeros(4000, np.int32))


def test_read_wav_is_a_deprecated_name_of_load_audio(tmp_path):
    path = _wav(tmp_path / "x.wav", np.zeros(1600, "<i2").tobytes())
    with pytest.warns(DeprecationWarning, match="use load_audio"):
        old = wn.read_wav(path)
    np.testing.assert_array_equal(old, wn.load_audio(path))
