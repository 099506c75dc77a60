"""Synthetic models for the tests (not part of the installed package).

Valid whisper.cpp files with the exact hyperparameters of a real architecture
(small, medium, large...) but seeded random weights, so that load paths and the
memory figures of big models can be tested where their real weights cannot be
had. They transcribe nothing useful. Every vocabulary token carries
``models.store.SYNTHETIC_TOKEN_PREFIX``, which ``store.is_synthetic`` checks, and the
model store refuses such files: they are never offered as usable models.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Optional

import numpy as np

from whisperx_native._fsutil import atomic_write
from whisperx_native.convert.mel import mel_filters
from whisperx_native.errors import ModelError
from whisperx_native.models.ggml_file import F16, MIN_VOCAB_TOKENS, GGMLWriter, expected_tensors, validate
from whisperx_native.models.quantize import quantize_matrix
from whisperx_native.models.registry import ARCHS, QUANT_TYPES, ftype_of
from whisperx_native.models.store import SYNTHETIC_TOKEN_PREFIX, is_synthetic  # noqa: F401 - for the tests

__all__ = ["write_synthetic", "is_synthetic", "SYNTHETIC_TOKEN_PREFIX"]

# A pool of random values that tensors are cut from at random offsets: much
# faster than drawing every weight of a large model (medium has 769M).
_POOL_SIZE = (1 << 21) + 17
_WEIGHT_SCALE = 0.02
_SPACE_ID = 220  # where GPT-2's vocabulary has it
_NORM_GAINS = ("_ln.weight", "ln_post.weight", "decoder.ln.weight")  # layer norms: gain 1


def _tokens() -> list:
    tokens = [SYNTHETIC_TOKEN_PREFIX + str(i).encode() for i in range(MIN_VOCAB_TOKENS)]
    tokens[_SPACE_ID] = b" "  # whisper.cpp aborts without a " " token (see ggml_file.validate)
    return tokens


def write_synthetic(path: "str | os.PathLike[str]", arch: str, quant: Optional[str] = None, *,
                    seed: int = 0, overwrite: bool = False) -> Path:
    """Write a synthetic model of architecture ``arch`` (a key of registry.ARCHS),
    F16 or quantized as ``quant``, atomically, and return its path."""
    if arch not in ARCHS:
        raise ModelError(f"unknown architecture {arch!r}")
    hp = ARCHS[arch]
    if quant is not None:
        if quant not in QUANT_TYPES:
            raise ModelError(f"unknown quantization {quant!r}")
        hp = dataclasses.replace(hp, ftype=ftype_of(quant))
    rng = np.random.default_rng(seed)
    pool = rng.uniform(-_WEIGHT_SCALE, _WEIGHT_SCALE, _POOL_SIZE).astype(np.float32)

    def random_tensor(n: int) -> np.ndarray:
        start = int(rng.integers(_POOL_SIZE))
        return np.resize(np.roll(pool, -start), n)

    with atomic_write(path, overwrite=overwrite, check=validate) as f:
        writer = GGMLWriter(f, hp)
        writer.write_header(mel_filters(hp.n_mels), _tokens())
        for spec in expected_tensors(hp):
            if spec.name.endswith(_NORM_GAINS):
                data = np.ones(spec.n_elements, np.float32)
            else:
                data = random_tensor(spec.n_elements)
            data = data.reshape(spec.shape)
            if spec.type.stored_as_bytes:
                writer.write_tensor(spec.name, quantize_matrix(data, spec.type.name))
            else:
                writer.write_tensor(spec.name, data.astype(np.float16 if spec.type is F16 else np.float32))
        writer.finish()
    return Path(path)

