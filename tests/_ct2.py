"""Write CTranslate2 model.bin files for the converter tests.

An independent implementation of ``ModelSpec._serialize`` (CTranslate2,
python/ctranslate2/specs/model_spec.py, binary version 6), used to derive
variants of a real model: other dtypes, int8/int16 quantization, aliases,
damaged variables.
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from whisperx_native.convert.ct2 import CT2Model

DTYPE_CODES = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4, "bfloat16": 5}


def _string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_ct2(
    path: Path,
    variables: Iterable[tuple[str, str, np.ndarray]],
    aliases: dict[str, str] | None = None,
    spec: str = "WhisperSpec",
    revision: int = 3,
) -> None:
    """``variables``: (name, dtype name, array); bfloat16 arrays are uint16 bit patterns."""
    variables = list(variables)
    with open(path, "wb") as f:
        f.write(struct.pack("<I", 6) + _string(spec) + struct.pack("<II", revision, len(variables)))
        for name, dtype, array in variables:
            array = np.asarray(array, order="C")  # (ascontiguousarray would make scalars 1-d)
            f.write(_string(name) + struct.pack(f"<B{array.ndim}I", array.ndim, *array.shape))
            f.write(struct.pack("<BI", DTYPE_CODES[dtype], array.nbytes))
            f.write(array.tobytes())
        aliases = aliases or {}
        f.write(struct.pack("<I", len(aliases)))
        for alias, target in aliases.items():
            f.write(_string(alias) + _string(target))


def read_all(model: CT2Model) -> list[tuple[str, str, np.ndarray]]:
    """Every stored variable as (name, dtype name, raw array)."""
    return [(name, var.dtype_name, model.raw(name)) for name, var in model.variables.items()]


def copy_model_dir(src: Path, dst: Path) -> Path:
    """Copy the vocabulary/config files of a CTranslate2 directory (not model.bin)."""
    dst.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        if p.name != "model.bin" and p.is_file():
            shutil.copyfile(p, dst / p.name)
    return dst


def quantize_int8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CTranslate2's int8 scheme: per-row scale 127 / max|row|, value = q / scale."""
    w = w.astype(np.float32)
    amax = np.abs(w).max(axis=1)
    amax[amax == 0] = 127.0
    scale = (127.0 / amax).astype(np.float32)
    return np.rint(w * scale[:, None]).astype(np.int8), scale


def quantize_int16(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CTranslate2's int16 scheme: one scale 2**10 / max|w| for the matrix."""
    w = w.astype(np.float32)
    scale = np.float32(2**10 / np.abs(w).max())
    q = np.clip(np.rint(w * scale), -32768, 32767).astype(np.int16)
    return q, np.array(scale, dtype=np.float32)


def to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """float -> bfloat16 bit patterns (truncation; exact for the test's purposes)."""
    return (np.ascontiguousarray(x, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
