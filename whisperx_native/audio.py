"""Audio input: numpy arrays and WAV files → 16 kHz mono float32 samples.

The rule for arrays (documented in the README):

* ``float32``, 1-D: used as is (no copy when C-contiguous); values are expected
  in [-1, 1] but louder input is not rejected.
* ``float64``: cast to float32.
* ``int16``: divided by 32768 (full-scale PCM → [-1, 1)).
* anything else (other ints, complex, object, 2-D / stereo): ``AudioError`` saying
  what to do. NaN / Inf anywhere: ``AudioError``. Empty: ``AudioError``.

WAV files are read with the standard library: PCM 16-bit or IEEE float 32-bit,
mono, 16 kHz. Other rates, channel counts and formats raise ``AudioError`` with the
reason, never a wrong transcript.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Union

import numpy as np

from .errors import AudioError

__all__ = ["SAMPLE_RATE", "MAX_SECONDS", "as_samples", "read_wav"]

SAMPLE_RATE = 16000
#: Longest input accepted in one call: 8 hours. The log-mel spectrogram alone of
#: longer audio passes 1 GB; split such recordings.
MAX_SECONDS = 8 * 3600

AudioLike = Union[str, os.PathLike, np.ndarray]


def as_samples(audio: AudioLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Validate and convert ``audio`` to a C-contiguous 1-D float32 array at 16 kHz."""
    if isinstance(audio, (str, os.PathLike)):
        return read_wav(audio)
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


def _check_length(n: int) -> None:
    if n > MAX_SECONDS * SAMPLE_RATE:
        raise AudioError(f"audio is {n / SAMPLE_RATE / 3600:.1f} h long; the limit for one "
                         f"call is {MAX_SECONDS / 3600:.0f} h: split it")


def _check_samples(samples: np.ndarray) -> None:
    if not np.isfinite(samples).all():
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise AudioError(f"audio contains {bad} NaN/Inf sample(s); clean or replace them (np.nan_to_num)")


def read_wav(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read a 16 kHz mono WAV file (16-bit PCM or 32-bit float) without extra copies."""
    p = Path(path)
    try:
        f = open(p, "rb")
    except OSError as exc:
        raise AudioError(f"{p}: cannot open: {exc.strerror or exc}") from None
    with f:
        header = f.read(12)
        if len(header) < 12 or header[:4] not in (b"RIFF", b"RF64") or header[8:12] != b"WAVE":
            raise AudioError(f"{p}: not a WAV file (other formats arrive with the audio-formats feature)")
        fmt = None
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                raise AudioError(f"{p}: WAV file has no data chunk (truncated?)")
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt ":
                body = f.read(size + (size & 1))
                if len(body) < 16:
                    raise AudioError(f"{p}: truncated fmt chunk")
                fmt = struct.unpack("<HHIIHH", body[:16])
                if fmt[0] == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: real tag in the GUID
                    fmt = (struct.unpack("<H", body[24:26])[0],) + fmt[1:]
            elif cid == b"data":
                if fmt is None:
                    raise AudioError(f"{p}: data chunk before fmt chunk")
                return _decode(p, f, fmt, size)
            else:
                f.seek(size + (size & 1), os.SEEK_CUR)


def _decode(p: Path, f, fmt, size: int) -> np.ndarray:
    tag, channels, rate, _, block_align, bits = fmt
    if tag == 1 and bits == 16:
        dtype = np.dtype("<i2")
    elif tag == 3 and bits == 32:
        dtype = np.dtype("<f4")
    else:
        kind = {1: "PCM", 3: "float"}.get(tag, f"format tag {tag}")
        raise AudioError(f"{p}: {kind} {bits}-bit WAV is not supported yet; use 16-bit PCM or 32-bit float")
    if channels != 1:
        raise AudioError(f"{p}: {channels} channels; only mono is supported yet (downmix it)")
    if rate != SAMPLE_RATE:
        raise AudioError(f"{p}: sample rate {rate} Hz; only {SAMPLE_RATE} Hz is supported yet (resample it)")
    remaining = os.fstat(f.fileno()).st_size - f.tell()
    if size == 0xFFFFFFFF or size > remaining:  # streaming writers leave the size open
        size = remaining
    n = size // dtype.itemsize
    if n == 0:
        raise AudioError(f"{p}: WAV file holds no samples")
    _check_length(n)
    raw = np.fromfile(f, dtype=dtype, count=n)
    if raw.size < n:
        raise AudioError(f"{p}: truncated WAV data")
    if dtype.kind == "i":
        samples = raw.astype(np.float32)
        samples *= np.float32(1.0 / 32768.0)
    else:
        samples = raw.astype(np.float32, copy=False)
        _check_samples(samples)
    return samples
