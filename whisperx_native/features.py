"""Log-mel features exactly as whisper.cpp 1.8.5 computes them, in numpy.

whisper.cpp's ``log_mel_spectrogram`` (src/whisper.cpp) runs a hand-written
recursive FFT on ``n_threads`` threads: 0.25 s of wall time and 0.45 cpu-seconds
for three minutes of audio on the bench machine, 6 % of a tiny.en run. numpy's
pocketfft does the same frames in a few tens of milliseconds on one core, so
:class:`~whisperx_native.Model` computes the features here and hands them to
whisper.cpp with ``whisper_set_mel_with_state`` (see ``State.full(mel=...)``).

The recipe, step for step as whisper.cpp's (itself OpenAI's ``log_mel_spectrogram``):
reflect-pad 200 samples at the start (``samples[1:201]`` reversed), then the audio,
then 200 + 30 s of zeros; periodic Hann window of 400; a frame every 160 samples,
``(len(padded) - 400) // 160`` frames (the last STFT frame dropped); power
spectrum; the model file's own filterbank; ``log10(max(x, 1e-10))``; clamp at
(global max - 8); ``(x + 4) / 4``. Frames past the audio are all-zero, and
whisper.cpp skips their FFT the same way: they are ``log10(1e-10)``.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from .errors import AudioError

__all__ = ["N_FFT", "HOP", "MelBank", "log_mel", "n_frames"]

N_FFT = 400
HOP = 160
_HALF = N_FFT // 2
_PAD_30S = 16000 * 30
# Frames per FFT batch: ~0.4 MB of scratch. glibc serves blocks of a size it has freed
# before from the calling thread's heap, which keeps its high-water mark: with 4096 frames
# (~20 MB of temporaries) the long-form workers' heaps held 45 MB more at the peak of a
# 4-minute file (bench/long_file_memory.py). Small batches are also faster (6 vs 14 ms for 30 s).
_CHUNK = 256
_HANN = (0.5 * (1.0 - np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT))).astype(np.float32)
_FLOOR = np.float32(np.log10(1e-10))


class MelBank:
    """A model's mel filterbank (n_mel x 201) as each filter's (first bin, end bin,
    weights): the filterbank is 97 % zeros. Build it once per model."""

    def __init__(self, filters: np.ndarray) -> None:
        self.n_mel = filters.shape[0]
        self.bands = []
        for row in np.asarray(filters, dtype=np.float32):
            nz = np.flatnonzero(row)
            lo, hi = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
            self.bands.append((lo, hi, np.ascontiguousarray(row[lo:hi])))


def n_frames(n_samples: int) -> Tuple[int, int]:
    """(frames in the padded spectrogram, frames that cover the audio) — whisper.cpp's
    ``mel.n_len`` and ``mel.n_len_org``."""
    padded = n_samples + _PAD_30S + 2 * _HALF
    return (padded - N_FFT) // HOP, 1 + (n_samples + _HALF - N_FFT) // HOP


def log_mel(samples: np.ndarray, bank: "MelBank | np.ndarray", pad_30s: bool = True) -> Tuple[np.ndarray, int]:
    """Features of 16 kHz mono float32 ``samples`` (at least 201 of them) with the
    model's filterbank (a MelBank, or the n_mel x 201 array). Returns ``(mel, n_len_org)``: a C-contiguous
    float32 array (n_mel, n_len) laid out as whisper.cpp's ``mel.data``, and the
    number of frames that cover the audio. ``pad_30s=False``: without the 30 s of silence
    after the audio but one frame of it (whisper_set_mel reads the mel's least value past
    its end, vendor/patches/0032: the same numbers, half a 30 s window's memory)."""
    x = np.ascontiguousarray(samples, dtype=np.float32)
    n = x.size
    if n <= _HALF:
        raise AudioError(f"need more than {_HALF} samples for the reflect padding, got {n}")
    if not isinstance(bank, MelBank):
        bank = MelBank(bank)
    n_mel = bank.n_mel
    n_len, n_len_org = n_frames(n)
    # Frames whose window reaches audio samples (whisper.cpp: (n + 200) / 160 + 1).
    n_fft_frames = min((n + _HALF) // HOP + 1, n_len)
    if not pad_30s:  # one frame of the silence, which holds the floor: the mel's least value
        n_len = min(n_len, n_fft_frames + 1)
    padded = np.zeros(n_fft_frames * HOP + N_FFT, np.float32)
    padded[:_HALF] = x[1:_HALF + 1][::-1]
    take = min(n, padded.size - _HALF)
    padded[_HALF:_HALF + take] = x[:take]
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:n_fft_frames]

    mel = np.full((n_mel, n_len), _FLOOR, np.float32)
    for i in range(0, n_fft_frames, _CHUNK):
        spec = np.fft.rfft(frames[i:i + _CHUNK] * _HANN, axis=-1)
        power = (spec.real * spec.real + spec.imag * spec.imag).astype(np.float32, copy=False)
        out = mel[:, i:i + power.shape[0]]
        for j, (lo, hi, w) in enumerate(bank.bands):
            # Not `power @ filters.T`: numpy's BLAS would start its own threads, which
            # spin after the call and slow down a transcription running beside it.
            np.einsum("fk,k->f", power[:, lo:hi], w, out=out[j])
        np.maximum(out, 1e-10, out=out)
        np.log10(out, out=out)
    np.maximum(mel, mel.max() - np.float32(8.0), out=mel)
    mel += np.float32(4.0)
    mel /= np.float32(4.0)
    return mel, n_len_org
