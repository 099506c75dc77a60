"""Every input format, made here from jfk.wav, decodes and transcribes like the 16 kHz WAV.

libsndfile (soundfile) writes WAV variants, FLAC, OGG/Vorbis, OGG/Opus and MP3; PyAV
(FFmpeg) writes the containers libsndfile cannot read: M4A (AAC), MP4 with a video
track, WebM (Opus). Decoding a long file must not hold copies at the source rate.
"""

from __future__ import annotations

import tracemalloc
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

import whisperx_native as wn
from _util import JFK_TEXT, JFK_WAV, normalize, run_python


@pytest.fixture(scope="module")
def wav_text(tiny) -> str:
    text = normalize(tiny.transcribe(JFK_WAV).text)
    assert text == normalize(JFK_TEXT)
    return text


def _at(samples: np.ndarray, rate: int) -> np.ndarray:
    return samples if rate == 16000 else soxr.resample(samples, 16000, rate).astype(np.float32)


def _sndfile(path: Path, samples, rate: int, channels: int, fmt: str, subtype: str) -> Path:
    x = _at(samples, rate)
    if channels == 2:  # two different channels: the downmix must average them, not pick one
        x = np.stack([x * 0.9, x * 0.6], axis=1)
    sf.write(str(path), x, rate, format=fmt, subtype=subtype)
    return path


def _ffmpeg(path: Path, samples, rate: int, codec: str, *, video: bool = False) -> Path:
    import av

    x = _at(samples, rate)
    with av.open(str(path), "w") as out:
        a = out.add_stream(codec, rate=rate, layout="stereo")
        if video:
            _black_video(out, len(x) / rate)
        step = 4096
        for i in range(0, len(x), step):
            chunk = np.ascontiguousarray(np.stack([x[i:i + step]] * 2))  # planar stereo
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = rate, i, Fraction(1, rate)
            out.mux(a.encode(frame))
        out.mux(a.encode(None))
    return path


def _black_video(out, seconds: float, fps: int = 5) -> None:
    """A small black MPEG-4 video track: makes the file a video container."""
    import av

    v = out.add_stream("mpeg4", rate=fps)
    v.width = v.height = 64
    v.pix_fmt = "yuv420p"
    black = np.zeros((64, 64, 3), np.uint8)
    for i in range(int(seconds * fps)):
        frame = av.VideoFrame.from_ndarray(black, format="rgb24")
        frame.pts, frame.time_base = i, Fraction(1, fps)
        out.mux(v.encode(frame))
    out.mux(v.encode(None))


FORMATS = {
    "wav-16k-int16": lambda p, s: _sndfile(p / "a.wav", s, 16000, 1, "WAV", "PCM_16"),
    "wav-44k-stereo-int16": lambda p, s: _sndfile(p / "a.wav", s, 44100, 2, "WAV", "PCM_16"),
    "wav-48k-int24": lambda p, s: _sndfile(p / "a.wav", s, 48000, 1, "WAV", "PCM_24"),
    "wav-22k-int32": lambda p, s: _sndfile(p / "a.wav", s, 22050, 1, "WAV", "PCM_32"),
    "wav-11k-int16": lambda p, s: _sndfile(p / "a.wav", s, 11025, 1, "WAV", "PCM_16"),
    "wav-32k-float": lambda p, s: _sndfile(p / "a.wav", s, 32000, 2, "WAV", "FLOAT"),
    "wav-16k-double": lambda p, s: _sndfile(p / "a.wav", s, 16000, 1, "WAV", "DOUBLE"),
    "flac-44k-stereo": lambda p, s: _sndfile(p / "a.flac", s, 44100, 2, "FLAC", "PCM_16"),
    "ogg-vorbis": lambda p, s: _sndfile(p / "a.ogg", s, 44100, 2, "OGG", "VORBIS"),
    "ogg-opus": lambda p, s: _sndfile(p / "a.opus", s, 48000, 1, "OGG", "OPUS"),
    "mp3-44k-stereo": lambda p, s: _sndfile(p / "a.mp3", s, 44100, 2, "MP3", "MPEG_LAYER_III"),
    "m4a-aac": lambda p, s: _ffmpeg(p / "a.m4a", s, 44100, "aac"),
    "mp4-video-aac": lambda p, s: _ffmpeg(p / "a.mp4", s, 48000, "aac", video=True),
    "webm-opus": lambda p, s: _ffmpeg(p / "a.webm", s, 48000, "libopus"),
}


@pytest.mark.parametrize("name", FORMATS)
def test_format_transcribes_like_the_16k_wav(name, tmp_path, jfk_samples, tiny, wav_text):
    path = FORMATS[name](tmp_path, jfk_samples)
    samples = wn.load_audio(path)
    assert samples.dtype == np.float32 and samples.ndim == 1 and samples.flags.c_contiguous
    # Same length as the source within codec padding (encoder delay, frame rounding).
    assert abs(samples.size - jfk_samples.size) < 0.1 * 16000, samples.size
    assert normalize(tiny.transcribe(path).text) == wav_text


def test_8_bit_wav_decodes_to_the_same_samples_within_its_precision(tmp_path, jfk_samples):
    # Not compared by transcript: 8 bits put the quiet "s" of "Americans" under the
    # quantization noise, and every model then hears "American" (the audio lost it).
    path = _sndfile(tmp_path / "a.wav", jfk_samples, 16000, 1, "WAV", "PCM_U8")
    decoded = wn.load_audio(path)
    assert decoded.size == jfk_samples.size
    np.testing.assert_allclose(decoded, jfk_samples, atol=1 / 128 + 1e-6)


def test_stereo_is_averaged_not_one_channel(tmp_path, jfk_samples):
    x = jfk_samples[:16000]
    sf.write(str(tmp_path / "s.wav"), np.stack([x, np.zeros_like(x)], axis=1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(wn.load_audio(tmp_path / "s.wav"), x / 2, atol=1e-6)


def test_resampling_filters_what_16_khz_cannot_hold(tmp_path):
    # 1 kHz to keep, 12 kHz above the new Nyquist (8 kHz): a real resampler's low-pass
    # removes it; linear interpolation or sample picking folds it down to 4 kHz at -2 dB.
    rate = 44100
    t = np.arange(rate * 2) / rate
    x = 0.4 * np.sin(2 * np.pi * 1000 * t) + 0.4 * np.sin(2 * np.pi * 12000 * t)
    sf.write(str(tmp_path / "tones.wav"), x, rate, subtype="FLOAT")
    y = wn.load_audio(tmp_path / "tones.wav")[1000:-1000]
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    freqs = np.fft.rfftfreq(y.size, 1 / 16000)
    assert abs(freqs[np.argmax(spectrum)] - 1000) < 2
    rest = spectrum[np.abs(freqs - 1000) > 50]
    assert 20 * np.log10(rest.max() / spectrum.max()) < -80


def test_long_file_is_decoded_without_copies_at_the_source_rate(tmp_path):
    seconds, rate = 120, 44100
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(tmp_path / "long.wav"), "w", rate, 2, subtype="PCM_16") as f:
        for _ in range(seconds):
            f.write((rng.standard_normal((rate, 2)) * 0.1).astype(np.float32))
    out_bytes = seconds * 16000 * 4                 # the result: 7.7 MB
    source_copy = seconds * rate * 2 * 4            # the whole file as float32 at 44.1 kHz stereo: 42 MB
    tracemalloc.start()
    try:
        samples = wn.load_audio(tmp_path / "long.wav")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(samples.size - seconds * 16000) <= 16
    assert peak < out_bytes + 8_000_000 < source_copy, (peak, out_bytes)


def test_container_without_audio_names_the_file(tmp_path):
    import av

    path = tmp_path / "silent-film.mp4"
    with av.open(str(path), "w") as out:
        _black_video(out, 1.0)
    with pytest.raises(wn.AudioError, match="silent-film.mp4: no audio stream"):
        wn.load_audio(path)


def test_corrupt_compressed_files_are_audio_errors(tmp_path, jfk_samples):
    for name in ("a.flac", "a.mp3"):
        good = FORMATS["flac-44k-stereo" if name == "a.flac" else "mp3-44k-stereo"](tmp_path, jfk_samples)
        bad = tmp_path / f"bad-{name}"
        bad.write_bytes(b"\x00garbage" * 500)
        with pytest.raises(wn.AudioError, match=f"bad-{name}"):
            wn.load_audio(bad)
        assert wn.load_audio(good).size > 0


def test_without_pyav_other_containers_say_what_to_install(tmp_path, jfk_samples):
    path = _ffmpeg(tmp_path / "a.m4a", jfk_samples, 44100, "aac")
    proc = run_python(f"""
    import sys
    sys.modules["av"] = None          # as if the av extra were not installed
    import whisperx_native as wn
    try:
        wn.load_audio({str(path)!r})
    except wn.AudioError as exc:
        print("AudioError:", exc)
    print(wn.load_audio({str(JFK_WAV)!r}).size)   # libsndfile formats still work
    """)
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.strip().splitlines()
    assert first.startswith("AudioError:") and "a.m4a" in first and "whisperx_native[av]" in first
    assert int(second) == 176000
