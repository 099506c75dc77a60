"""Whisper's mel filterbank, computed the way librosa does it.

OpenAI Whisper's ``mel_filters.npz`` (which convert-pt-to-ggml.py copies into
every ggml file) is ``librosa.filters.mel(sr=16000, n_fft=400, n_mels=N)``:
Slaney mel scale, Slaney area normalization, float32. whisper.cpp computes its
log-mel spectrogram with the filterbank stored in the model file, so this has
to reproduce librosa's numbers, including its float32 rounding steps.
"""

from __future__ import annotations

import numpy as np

from ..errors import OptionError

__all__ = ["hz_to_mel", "mel_filters", "mel_to_hz"]

# Slaney's auditory-toolbox mel scale: linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    hz = np.asanyarray(hz, dtype=np.float64)
    mel = hz / _F_SP
    log_region = hz >= _MIN_LOG_HZ
    return np.where(log_region, _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP, mel)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    mel = np.asanyarray(mel, dtype=np.float64)
    hz = _F_SP * mel
    log_region = mel >= _MIN_LOG_MEL
    return np.where(log_region, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL)), hz)


def mel_filters(n_mels: int = 80, *, sample_rate: int = 16000, n_fft: int = 400) -> np.ndarray:
    """Triangular Slaney-normalized mel filters, shape ``(n_mels, 1 + n_fft // 2)``, float32."""
    if n_mels < 1 or n_fft < 2 or sample_rate <= 0:
        raise OptionError(f"bad mel filterbank parameters: n_mels={n_mels}, n_fft={n_fft}, sr={sample_rate}")
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_points = np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2.0), n_mels + 2)
    hz_points = mel_to_hz(mel_points)

    fdiff = np.diff(hz_points)
    ramps = np.subtract.outer(hz_points, fft_freqs)
    # librosa stores each triangle in a float32 array, then scales it in place
    # (computed in float64, rounded back to float32): keep both roundings.
    weights = np.zeros((n_mels, fft_freqs.size), dtype=np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (hz_points[2 : n_mels + 2] - hz_points[:n_mels])
    weights *= enorm[:, np.newaxis]
    # Recent librosa leaves a -0.0 at [0, 0]; Whisper's mel_filters.npz (and so
    # every upstream ggml file) has +0.0 there. Same values, but match the bytes.
    weights[weights == 0] = 0.0
    return weights
