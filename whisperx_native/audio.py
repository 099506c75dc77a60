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
original rate and channel count; ``stream_audio`` hands the blocks on as they come
and holds none (what ``Model.transcribe(path)`` reads a long file with:
filestream.py). Unreadable, empty or unknown input raises ``AudioError`` naming the
file and the reason.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np

from .errors import AudioError

__all__ = ["SAMPLE_RATE", "MAX_SECONDS", "as_samples", "load_audio", "stream_audio", "read_wav", "to_float32",
           "downmix"]

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
    samples = np.ascontiguousarray(to_float32(audio))
    _check_samples(samples)
    return samples


def to_float32(a: np.ndarray, what: str = "audio") -> np.ndarray:
    """The module's rule for sample types, in one place: float32 as it is, float64 cast,
    int16 divided by 32768 (full-scale PCM → [-1, 1)), big-endian data in native order;
    any other dtype an AudioError. Shapes are the caller's business."""
    if a.dtype.kind in "fi" and not a.dtype.isnative:  # big-endian data: same values, native order
        a = a.astype(a.dtype.newbyteorder("="))
    if a.dtype == np.float32:
        return a
    if a.dtype == np.float64:
        return a.astype(np.float32)
    if a.dtype == np.int16:
        return a.astype(np.float32) * np.float32(1.0 / 32768.0)
    raise AudioError(f"unsupported {what} dtype {a.dtype}: pass float32 in [-1, 1] "
                     "(float64 and int16 are converted)")


def downmix(frames: np.ndarray) -> np.ndarray:
    """(frames, channels) → 1-D float32 mono: the channels' mean (the one channel as it is)."""
    return frames[:, 0] if frames.shape[1] == 1 else frames.mean(axis=1, dtype=np.float32)


def _check_length(n: float, where: str = "audio") -> None:
    """``n`` samples at 16 kHz must fit the one-call limit."""
    if n > MAX_SECONDS * SAMPLE_RATE:
        raise AudioError(f"{where} is {n / SAMPLE_RATE / 3600:.1f} h long; the limit for one "
                         f"call is {MAX_SECONDS / 3600:.0f} h: split it")


#: Largest sample magnitude accepted. Float audio is [-1, 1]; louder input is tolerated
#: (int16-scaled floats reach 32768), but 1e30 squares to infinity in the spectrogram.
MAX_AMPLITUDE = 65536.0


def _check_samples(samples: np.ndarray, where: str = "audio") -> None:
    check = _SampleCheck()
    check.add(samples)
    check.finish(where)


class _SampleCheck:
    """:func:`_check_samples` over samples that come block by block: the same verdict and
    message as one call over all of them (NaN/Inf counted over all, the peak of all)."""

    def __init__(self) -> None:
        self.lo, self.hi, self.bad = math.inf, -math.inf, 0

    def add(self, x: np.ndarray) -> None:
        if not x.size:
            return
        lo, hi = float(x.min()), float(x.max())  # NaN propagates: one pass each, no copy
        if not (math.isfinite(lo) and math.isfinite(hi)):
            self.bad += int(np.count_nonzero(~np.isfinite(x)))
        else:
            self.lo, self.hi = min(self.lo, lo), max(self.hi, hi)

    def finish(self, where: str = "audio") -> None:
        if self.bad:
            raise AudioError(f"{where} contains {self.bad} NaN/Inf sample(s); clean or replace them (np.nan_to_num)")
        peak = max(-self.lo, self.hi)
        if peak > MAX_AMPLITUDE:
            raise AudioError(f"{where} has samples up to {peak:.3g}: float audio must be in [-1, 1] "
                             f"(at most {MAX_AMPLITUDE:.0f} is tolerated); scale it first")


def load_audio(path: Union[str, os.PathLike]) -> np.ndarray:
    """Decode an audio (or video) file to 16 kHz mono float32 samples.

    libsndfile (soundfile) reads WAV, FLAC, OGG, MP3, AIFF and friends; other
    containers go to FFmpeg (PyAV) when the ``av`` extra is installed. Several
    channels are averaged, other rates resampled with soxr. Raises ``AudioError``
    naming the file and the reason for a missing, unreadable, empty, corrupt or
    unsupported file, and for anything that is not a regular file (a FIFO would
    block forever, ``/dev/zero`` never ends): such paths are never read."""
    return _decode(path, None)


def stream_audio(path: Union[str, os.PathLike], sink: Callable[[np.ndarray], None]) -> int:
    """Decode ``path`` as :func:`load_audio` does, but hand the 16 kHz mono float32 samples
    to ``sink(block)`` block by block as they are decoded instead of keeping them: the
    blocks joined are bit for bit what ``load_audio`` returns, and nothing here holds more
    than one block. Returns the number of samples.

    The checks and errors are ``load_audio``'s (rate, declared length, the size-based
    limit, NaN/Inf and peak over all the samples: the last two only after the last block,
    so a sink may have seen samples of a file that is then refused). An exception raised
    by ``sink`` stops the decode and propagates as it is."""
    try:
        return _decode(path, sink)
    except _SinkRaised as stop:
        raise stop.exc from None


class _SinkRaised(BaseException):
    """Carries what a sink raised past the decoders' handlers (which turn their libraries'
    errors into AudioError) to :func:`stream_audio`."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(exc)
        self.exc = exc


def _decode(path, sink):
    """load_audio (``sink`` None: the samples) or stream_audio (the number of samples)."""
    f, p, size = _open_regular(path)
    with f:
        if size == 0:
            raise AudioError(f"{_show(p)}: the file is empty")
        out = _decode_sndfile(p, f, size, sink)
        if out is None:
            f.seek(0)
            out = _decode_ffmpeg(p, f, size, sink)
    if sink is not None:
        n, check = out
        if n == 0:
            raise AudioError(f"{_show(p)}: no samples: the file holds no audio")
        check.finish(_show(p))
        return n
    if out.size == 0:
        raise AudioError(f"{_show(p)}: no samples: the file holds no audio")
    _check_samples(out, _show(p))
    return out


def _show(p) -> str:
    """A file name fit for a message: undecodable bytes of the name escaped, never an
    encoding error when the message is printed."""
    return str(p).encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _open_regular(path):
    """(binary file, Path, size) of a regular file, opened without blocking.

    ``O_NONBLOCK`` makes the open of a FIFO without a writer return at once; the
    descriptor's own type is then checked, so nothing but a regular file is read."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise AudioError(f"cannot interpret {type(path).__name__} as an audio file path")
    p = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(p, flags)
    except OSError as exc:
        raise AudioError(f"{_show(p)}: cannot open: {exc.strerror or exc}") from None
    except (ValueError, UnicodeError) as exc:  # a NUL in the name
        raise AudioError(f"{_show(p)}: cannot open: not a usable file name ({exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((what for test, what in _KINDS if test(st.st_mode)), "not a regular file")
            raise AudioError(f"{_show(p)}: cannot open: it is {kind}, not a regular audio file")
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return f, p, st.st_size
def read_wav(path: Union[str, os.PathLike]) -> np.ndarray:
    """Deprecated: :func:`load_audio`'s old name (from when only WAV was read)."""
    import warnings

    warnings.warn("whisperx_native.read_wav is deprecated: use load_audio (the same function)",
                  DeprecationWarning, stacklevel=2)
    return load_audio(path)


#: Sample rates a file may declare: below 1 kHz is no recording (a 2 Hz header turned
#: a 96 KB WAV into 6.7 h of "audio"), above 384 kHz no audio interface.
MIN_RATE, MAX_RATE = 1000, 384000
#: Channels a file may declare (7.1.4 has 12, third-order ambisonics 16).
MAX_CHANNELS = 64
#: Decoded audio a file of ``size`` bytes may hold: 10 minutes, plus one second per 64
#: bytes (0.5 kbit/s, below any speech codec; Opus at its lowest is 6 kbit/s). More is a
#: header that lies or a decompression bomb, not a recording.
FLOOR_SECONDS = 600.0
MIN_BYTES_PER_SECOND = 64


def max_seconds_for(size: int) -> float:
    """The longest decoded duration accepted from a file of ``size`` bytes."""
    return min(float(MAX_SECONDS), FLOOR_SECONDS + size / MIN_BYTES_PER_SECOND)


class _Mono16k:
    """Collects decoded blocks as 16 kHz mono float32 in one array, or, with a ``sink``,
    hands each on (``sink(block)``) and keeps none.

    Blocks are (frames,) or (frames, channels) float32 at ``rate``; each is averaged
    to mono and resampled in a stream (soxr keeps the filter state across blocks).
    The rate and the declared length are checked first; the decoded length may never
    pass what the file's size can hold (:func:`max_seconds_for`)."""

    def __init__(self, where: str, rate, expected_frames: float, file_size: Optional[int] = None,
                 sink: Optional[Callable[[np.ndarray], None]] = None) -> None:
        if not isinstance(rate, (int, np.integer)) or not MIN_RATE <= rate <= MAX_RATE:
            raise AudioError(f"{where}: sample rate {rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz: "
                             "a corrupt header, not a recording")
        rate = int(rate)
        self.where = where
        self.resampler = None
        if rate != SAMPLE_RATE:
            import soxr

            self.resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        expected = max(0.0, float(expected_frames)) * SAMPLE_RATE / rate
        if not math.isfinite(expected):
            expected = 0.0
        _check_length(expected, where)
        self.file_size = file_size
        self.max_n = MAX_SECONDS * SAMPLE_RATE
        if file_size is not None:
            self.max_n = int(max_seconds_for(file_size) * SAMPLE_RATE)
            if expected > self.max_n:
                raise AudioError(f"{where}: the header claims {expected / SAMPLE_RATE / 3600:.1f} h of audio in a "
                                 f"file of {file_size} bytes: a corrupt header")
        # The buffer's size (a sink's too, never allocated: the same checks at the same lengths).
        self.cap = int(math.ceil(min(expected, self.max_n))) + 64
        self.sink = sink
        self.out = np.empty(self.cap, np.float32) if sink is None else None
        self.check = _SampleCheck() if sink is not None else None
        self.n = 0

    def add(self, block: np.ndarray) -> None:
        if block.ndim == 2:
            block = downmix(block)
        if self.resampler is not None:
            block = self.resampler.resample_chunk(block)
        self._append(block)

    def finish(self):
        """The samples; with a sink, (how many were handed on, their _SampleCheck)."""
        if self.resampler is not None:  # the filter's tail
            self._append(self.resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        if self.sink is not None:
            return self.n, self.check
        out = self.out[:self.n]
        # A container's duration can be a loose estimate: don't keep a mostly empty buffer.
        return out.copy() if self.n < 0.9 * self.out.size else out

    def _append(self, x: np.ndarray) -> None:
        end = self.n + x.size
        if end > self.cap:
            _check_length(end, self.where)
            if end > self.max_n + 64:
                raise AudioError(f"{self.where}: decodes to more than {self.max_n / SAMPLE_RATE / 60:.0f} min of "
                                 f"audio from a file of {self.file_size} bytes: corrupt or a decompression bomb")
            self.cap = min(max(end, self.cap * 3 // 2), self.max_n + 64)
            if self.sink is None:
                grown = np.empty(self.cap, np.float32)
                grown[:self.n] = self.out[:self.n]
                self.out = grown
        if self.sink is None:
            self.out[self.n:end] = x
        elif x.size:
            x = np.ascontiguousarray(x, dtype=np.float32)
            self.check.add(x)
            try:
                self.sink(x)
            except BaseException as exc:  # past the decoders' handlers, untouched
                raise _SinkRaised(exc) from None
        self.n = end


def _decode_sndfile(p: Path, f, size: int, sink=None):
    """Samples (with a sink: what _Mono16k.finish returns) through libsndfile, or None when
    it does not know the format."""
    import soundfile as sf

    where = _show(p)
    try:
        snd = sf.SoundFile(f)
    except sf.LibsndfileError:
        return None  # not a format libsndfile reads (or not audio at all): let FFmpeg try
    except (RuntimeError, ValueError, TypeError, OverflowError, MemoryError) as exc:
        raise AudioError(f"{where}: cannot read the audio header: {exc}") from None
    with snd:
        channels = snd.channels
        if not 1 <= channels <= MAX_CHANNELS:
            raise AudioError(f"{where}: {channels} channels (at most {MAX_CHANNELS}): a corrupt header")
        out = _Mono16k(where, snd.samplerate, max(snd.frames, 0), size, sink)
        block_frames = min(BLOCK_FRAMES, max(4096, (1 << 18) // channels))
        try:
            while True:
                block = snd.read(block_frames, dtype="float32", always_2d=True)
                if not len(block):
                    break
                out.add(block)
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            raise AudioError(f"{where}: cannot decode {snd.format_info}: {exc}") from None
        return out.finish()


def _decode_ffmpeg(p: Path, f, size: int, sink=None):
    """Samples of the first audio stream through FFmpeg (PyAV)."""
    where = _show(p)
    try:
        import av
    except ImportError:
        raise AudioError(f"{where}: not an audio format libsndfile reads (WAV, FLAC, OGG, MP3 ...); for other "
                         "containers (M4A, MP4, WebM ...) install FFmpeg support: "
                         "pip install 'whisperx_native[av]'") from None
    try:
        with av.open(f, metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioError(f"{where}: no audio stream in this {container.format.name} file")
            stream = container.streams.audio[0]
            ctx = stream.codec_context
            if ctx is None or getattr(ctx, "codec", None) is None:
                raise AudioError(f"{where}: FFmpeg has no decoder for this audio stream")
            rate = getattr(stream, "rate", None) or getattr(ctx, "sample_rate", None)
            if stream.duration and stream.time_base:
                expected = float(stream.duration * stream.time_base) * (rate or 0)
            else:
                expected = (container.duration or 0) / av.time_base * (rate or 0)
            out = _Mono16k(where, rate, expected, size, sink)
            # FFmpeg only downmixes and converts to float here; soxr resamples, as for libsndfile.
            to_mono = av.AudioResampler(format="flt", layout="mono", rate=rate)
            for frame in container.decode(stream):
                for frame_out in to_mono.resample(frame):
                    out.add(frame_out.to_ndarray().reshape(-1))
            for frame_out in to_mono.resample(None):
                out.add(frame_out.to_ndarray().reshape(-1))
            return out.finish()
    except AudioError:
        raise
    except av.error.FFmpegError as exc:
        raise AudioError(f"{where}: not a recognised audio file (libsndfile does not know it; "
                         f"FFmpeg: {exc.strerror or exc})") from None
    except MemoryError:
        raise AudioError(f"{where}: FFmpeg ran out of memory decoding it: corrupt or far too long") from None
    except Exception as exc:  # PyAV raises plain Python errors for streams it cannot handle
        raise AudioError(f"{where}: FFmpeg cannot decode this file ({type(exc).__name__}: {exc})") from None
