"""Fixtures that load models into native memory (used through conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

import whisperx_native as wn
from _util import JFK_WAV


@pytest.fixture(scope="session")
def jfk_samples() -> np.ndarray:
    return wn.load_audio(JFK_WAV)


@pytest.fixture(scope="session")
def long_samples(jfk_samples) -> np.ndarray:
    """~50 s of speech: jfk four times with pauses, so whisper needs two windows."""
    pause = np.zeros(wn.SAMPLE_RATE * 1, dtype=np.float32)
    return np.concatenate([jfk_samples, pause] * 4)


@pytest.fixture(scope="session")
def tiny(tiny_en_ggml):
    """One tiny.en model shared by the tests that only transcribe. Fixed thread count:
    several tests compare numbers across calls, and load adaptation could change them."""
    with wn.Model(tiny_en_ggml, adapt_threads=False) as m:
        yield m


@pytest.fixture(scope="session")
def base(base_ggml):
    with wn.Model(base_ggml) as m:
        yield m
