"""Quantize an F16 whisper.cpp model with ggml's own kernels.

What whisper.cpp's ``quantize`` tool (examples/quantize, ``ggml_common_quantize_0``)
does, streamed tensor by tensor: every 2-D weight matrix becomes the target type;
conv kernels (3-D) stay F16; biases, layer norms and both positional embeddings
stay F32. The header's ftype becomes the ggml_ftype + 1000 x GGML_QNT_VERSION.
The rows are converted to float32 in numpy and handed to ``ggml_quantize_chunk``
(compiled in ``_native._core``) with the GIL released, a few row blocks in
parallel. The output is written atomically and validated before it appears.
"""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np

from .._fsutil import atomic_write
from ..threads import default_threads
from ..errors import ModelError
from .ggml_file import GGMLWriter, expected_tensors, ggml_type, read_vocab, validate
from .registry import QUANT_TYPES, ftype_of

__all__ = ["quantize_model", "quantize_matrix", "QUANT_TYPES"]

_CHUNK_VALUES = 1 << 22  # float32 values converted at a time (16 MB)


def bf16_bits(data: np.ndarray) -> np.ndarray:
    """float values -> bfloat16 bit patterns (round to nearest even, as ggml's
    ggml_fp32_to_bf16), as a flat uint8 array."""
    u = np.ascontiguousarray(data, dtype=np.float32).reshape(-1).view(np.uint32)
    rounded = (u + (np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))) >> np.uint32(16)
    return rounded.astype("<u2").view(np.uint8)


def quantize_matrix(data: np.ndarray, qtype: str, n_threads: int = 2) -> np.ndarray:
    """Quantize a 2-D float matrix (numpy shape (rows, row_len)) to ``qtype``;
    returns the encoded blocks as a flat uint8 array."""
    from .._native import _core

    if qtype == "bf16":
        return bf16_bits(data)
    t = ggml_type(qtype)
    rows, cols = data.shape
    if cols % t.block_size:
        raise ModelError(f"{qtype} needs rows that are multiples of {t.block_size} values, got {cols}")
    row_bytes = cols // t.block_size * t.type_size
    out = np.empty(rows * row_bytes, np.uint8)
    step = max(1, _CHUNK_VALUES // cols)

    def work(r0: int) -> None:
        r1 = min(rows, r0 + step)
        src = np.ascontiguousarray(data[r0:r1], dtype=np.float32)
        _core.quantize_rows(t.id, src, out[r0 * row_bytes:r1 * row_bytes])

    starts = range(0, rows, step)
    if n_threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(work, starts))
    else:
        for r0 in starts:
            work(r0)
    return out


def quantize_model(src: "str | os.PathLike[str]", dst: "str | os.PathLike[str]", qtype: str, *,
                   overwrite: bool = False, n_threads: Optional[int] = None) -> Path:
    """Write ``src`` (an F16 model) quantized as ``qtype`` (``"q5_0"``...) to ``dst``."""
    qtype = qtype.lower()
    if qtype not in QUANT_TYPES:
        raise ModelError(f"unknown quantization type {qtype!r}; one of {', '.join(QUANT_TYPES)}")
    info = validate(src)
    if info.hparams.base_ftype != 1:
        raise ModelError(f"'{src}' is {info.wtype.name}, not F16: quantize from the F16 model "
                         "(quantizing twice loses accuracy)")
    hp = dataclasses.replace(info.hparams, ftype=ftype_of(qtype))
    try:
        hp.check()
    except ModelError as exc:
        raise ModelError(f"cannot quantize '{src}' to {qtype}: {exc}") from None
    specs = {s.name: s for s in expected_tensors(hp)}
    n_threads = n_threads or default_threads()

    data = np.memmap(info.path, dtype=np.uint8, mode="r")
    with atomic_write(dst, overwrite=overwrite, check=validate) as f:
        writer = GGMLWriter(f, hp)
        writer.write_header(info.mel_filters, read_vocab(info.path))
        for t in info.tensors:  # file order, one tensor in memory at a time
            spec = specs[t.name]
            raw = data[t.offset:t.offset + t.nbytes]
            values = raw.view(np.float16 if t.type.name == "f16" else np.float32).reshape(t.shape)
            if spec.type.stored_as_bytes:  # its own type: a mixed file has two
                writer.write_tensor(t.name, quantize_matrix(values, spec.type.name.lower(), n_threads))
            else:
                writer.write_tensor(t.name, values)
        writer.finish()
    del data
    return Path(dst)
