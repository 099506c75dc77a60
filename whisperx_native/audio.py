"""Audio input: numpy arrays and audio files → 16 kHz mono float32 samples.

The rule for arrays (documented in the README):

* ``float32``, 1-D: used as is (no copy when C-contiguous); values are expected
  in [-1, 1] but louder input is not rejected.
* ``float64``: cast to float32.
* ``int16``: divided by 32768 (full-scale PCM → [-1, 1)).
* anything else (other ints, complex, object, 2-D / stereo): ``AudioError`` saying
  what to do. NaN / Inf anywhere: ``AudioError``. Empty: ``AudioError``.

Files (``load_audio``) are decoded by libsndfile through soundfile — WAV at any rate
and channel count, 8/16/24/32-bit integer or float, FLAC, OGG/Vorbis/Opus, MP3,
AIFF … — and, when libsndfile does not know the format, by FFmpeg through PyAV
(the optional ``av`` extra: M4A/AAC, MP4, MKV, WebM …). Decoding goes block by
block: each block is downmixed to mono and fed to soxr's streaming resampler, so
a long recording is held once, as 16 kHz float32, never as a full copy at its
original rate and channel count. Unreadable, empty or unknown input raises
``AudioError`` naming the file and the reason.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .errors import AudioError

__all__ = ["SAMPLE_RATE", "MAX_SECONDS", "as_samples", "load_audio", "read_wav"]

SAMPLE_RATE = 16000
#: Longest input accepted in one call: 8 hours. The log-mel spectrogram alone of
#: longer audio passes 1 GB; split such recordings.
MAX_SECONDS = 8 * 3600

#: Frames decoded per step: small next to the output, large enough for few Python calls.
BLOCK_FRAMES = 1 << 16

AudioLike = Union[str, os.PathLike, np.ndarray]


def as_samples(audio: AudioLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Validate and convert ``audio`` to a C-contiguous 1-D float32 array at 16 kHz.

    A path is decoded with :func:`load_audio` (any rate and channel count); an
    array must already be 16 kHz mono (see the module's rules)."""
    if isinstance(audio, (str, os.PathLike)):
        return load_audio(audio)
    if hasattr(audio, "read"):  # a binary file object, io.BytesIO (faster-whisper takes them): decode it
        from .compat import load_audio_file

        return load_audio_file(audio)
    if isinstance(audio, (bytes, bytearray, memoryview)):
        raise AudioError("raw bytes are ambiguous: pass a numpy array (int16 or float32) or a file path")
    if not isinstance(audio, np.ndarray):
        try:
            audio = np.asarray(audio)
        except Exception as exc:  # pragma: no cover - depends on the object
            raise AudioError(f"cannot interpret {type(audio).__name__} as audio: {exc}") from None
    if sample_rate != SAMPLE_RATE:
        raise AudioError(f"audio at {sample_rate} Hz: whisper needs {SAMPLE_RATE} Hz; "
                         "resample it first (or pass a file path)")
    if audio.ndim != 1:
        raise AudioError(f"audio must be 1-D mono, got shape {audio.shape}; "
                         "downmix first, e.g. audio.mean(axis=1) for (n, channels)")
    if audio.size == 0:
        raise AudioError("audio is empty (0 samples)")
    _check_length(audio.size)
    if audio.dtype == np.float32:
        samples = np.ascontiguousarray(audio)
    elif audio.dtype == np.float64:
        samples = audio.astype(np.float32)
    elif audio.dtype == np.int16:
        samples = audio.astype(np.float32) / np.float32(32768.0)
    else:
        raise AudioError(f"unsupported audio dtype {audio.dtype}: pass float32 in [-1, 1] "
                         "(float64 and int16 are converted)")
    _check_samples(samples)
    return samples


def _check_length(n: float, where: str = "audio") -> None:
    """``n`` samples at 16 kHz must fit the one-call limit."""
    if n > MAX_SECONDS * SAMPLE_RATE:
        raise AudioError(f"{where} is {n / SAMPLE_RATE / 3600:.1f} h long; the limit for one "
                         f"call is {MAX_SECONDS / 3600:.0f} h: split it")


def _check_samples(samples: np.ndarray, where: str = "audio") -> None:
    if not np.isfinite(samples).all():
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise AudioError(f"{where} contains {bad} NaN/Inf sample(s); clean or replace them (np.nan_to_num)")




def load_audio(path: Union[str, os.PathLike]) -> np.ndarray:
    """Decode an audio (or video) file to 16 kHz mono float32 samples.

    libsndfile (soundfile) reads WAV, FLAC, OGG, MP3, AIFF and friends; other
    containers go to FFmpeg (PyAV) when the ``av`` extra is installed. Several
    channels are averaged, other rates resampled with soxr. Raises ``AudioError``
    naming the file and the reason for a missing, unreadable, empty, corrupt or
    unsupported file."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
    except OSError as exc:
        raise AudioError(f"{p}: cannot open: {exc.strerror or exc}") from None
    if size == 0:
        raise AudioError(f"{p}: the file is empty")
    samples = _decode_sndfile(p)
    if samples is None:
        samples = _decode_ffmpeg(p)
    if samples.size == 0:
        raise AudioError(f"{p}: no samples: the file holds no audio")
    _check_samples(samples, str(p))
    return samples


#: Kept for code written when only WAV was read: the same as :func:`load_audio`.
read_wav = load_audio


class _Mono16k:
    """Collects decoded blocks as 16 kHz mono float32 in one array.

    Blocks are (frames,) or (frames, channels) float32 at ``rate``; each is averaged
    to mono and resampled in a stream (soxr keeps the filter state across blocks)."""

    def __init__(self, where: str, rate: int, expected_frames: float) -> None:
        if rate <= 0:
            raise AudioError(f"{where}: invalid sample rate {rate}")
        self.where = where
        self.resampler = None
        if rate != SAMPLE_RATE:
            import soxr

            self.resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        expected = expected_frames * SAMPLE_RATE / rate
        _check_length(expected, where)
        self.out = np.empty(int(math.ceil(expected)) + 64, np.float32)
        self.n = 0

    def add(self, block: np.ndarray) -> None:
        if block.ndim == 2:
            block = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
        if self.resampler is not None:
            block = self.resampler.resample_chunk(block)
        self._append(block)

    def finish(self) -> np.ndarray:
        if self.resampler is not None:  # the filter's tail
            self._append(self.resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        out = self.out[:self.n]
        # A container's duration can be a loose estimate: don't keep a mostly empty buffer.
        return out.copy() if self.n < 0.9 * self.out.size else out

    def _append(self, x: np.ndarray) -> None:
        end = self.n + x.size
        if end > self.out.size:
            _check_length(end, self.where)
            grown = np.empty(max(end, self.out.size * 3 // 2), np.float32)
            grown[:self.n] = self.out[:self.n]
            self.out = grown
        self.out[self.n:end] = x
        self.n = end


def _decode_sndfile(p: Path) -> Optional[np.ndarray]:
    """Samples through libsndfile, or None when it does not know the format."""
    import soundfile as sf

    try:
        f = sf.SoundFile(str(p))
    except sf.LibsndfileError:
        return None  # not a format libsndfile reads (or not audio at all): let FFmpeg try
    with f:
        sink = _Mono16k(str(p), f.samplerate, max(f.frames, 0))
        try:
            while True:
                block = f.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
                if not len(block):
                    break
                sink.add(block)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"{p}: cannot decode {f.format_info}: {exc}") from None
        return sink.finish()


def _decode_ffmpeg(p: Path) -> np.ndarray:
    """Samples of the first audio stream through FFmpeg (PyAV)."""
    try:
        import av
    except ImportError:
        raise AudioError(f"{p}: not an audio format libsndfile reads (WAV, FLAC, OGG, MP3 ...); for other "
                         "containers (M4A, MP4, WebM ...) install FFmpeg support: "
                         "pip install 'whisperx_native[av]'") from None
    try:
        with av.open(str(p), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioError(f"{p}: no audio stream in this {container.format.name} file")
            stream = container.streams.audio[0]
            rate = stream.rate or stream.codec_context.sample_rate
            if stream.duration and stream.time_base:
                expected = float(stream.duration * stream.time_base) * rate
            else:
                expected = (container.duration or 0) / av.time_base * rate
            sink = _Mono16k(str(p), rate, expected)
            # FFmpeg only downmixes and converts to float here; soxr resamples, as for libsndfile.
            to_mono = av.AudioResampler(format="flt", layout="mono", rate=rate)
            for frame in container.decode(stream):
                for out in to_mono.resample(frame):
                    sink.add(out.to_ndarray().reshape(-1))
            for out in to_mono.resample(None):
                sink.add(out.to_ndarray().reshape(-1))
            return sink.finish()
    except av.error.FFmpegError as exc:
        raise AudioError(f"{p}: not a recognised audio file (libsndfile does not know it; "
                         f"FFmpeg: {exc.strerror or exc})") from None
