"""Reader for CTranslate2 ``model.bin`` files (as written by
``ctranslate2.specs.model_spec.ModelSpec._serialize``), memory-mapped.

Layout (little-endian), binary version 6::

    uint32 binary_version
    string spec_name                  (version >= 2)
    uint32 spec_revision              (version >= 2)
    uint32 n_variables, then per variable:
        string name, uint8 rank, uint32 dims[rank],
        uint8 dtype (version >= 4; before: item size), uint32 n_bytes
        (version < 4: element count), raw data
    uint32 n_aliases, then per alias: string alias, string target  (version >= 3)

where ``string`` is a uint16 length (including a trailing NUL) and the bytes.
Quantized weights ``X`` (int8 / int16) come with a float ``X_scale``
(per row for int8, one scalar for int16): the real value is ``q / scale``.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError

__all__ = ["CT2_DTYPES", "CT2Model", "CT2Variable"]

MAX_BINARY_VERSION = 6

# DataType enum of include/ctranslate2/types.h (bfloat16 is read as raw uint16).
CT2_DTYPES: dict[int, tuple[str, np.dtype]] = {
    0: ("float32", np.dtype("<f4")),
    1: ("int8", np.dtype("i1")),
    2: ("int16", np.dtype("<i2")),
    3: ("int32", np.dtype("<i4")),
    4: ("float16", np.dtype("<f2")),
    5: ("bfloat16", np.dtype("<u2")),
}
_LEGACY_ITEM_SIZES = {4: 0, 2: 2, 1: 1}  # binary version < 4 stored an item size


@dataclass(frozen=True)
class CT2Variable:
    name: str
    shape: tuple[int, ...]
    dtype_code: int
    offset: int
    nbytes: int

    @property
    def dtype_name(self) -> str:
        return CT2_DTYPES[self.dtype_code][0]

    @property
    def is_scalar(self) -> bool:
        return len(self.shape) == 0


class _Cursor:
    def __init__(self, buf: np.ndarray, path: Path) -> None:
        self.buf = buf  # uint8 memmap of the whole file
        self.pos = 0
        self.path = path

    def take(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > self.buf.size:
            raise ModelError(
                f"CTranslate2 model '{self.path}' is truncated: {what} needs {n} bytes "
                f"at offset {self.pos} but the file is {self.buf.size} bytes"
            )
        data = self.buf[self.pos : end].tobytes()
        self.pos = end
        return data

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return struct.unpack("<H", self.take(2, what))[0]

    def u32(self, what: str) -> int:
        return struct.unpack("<I", self.take(4, what))[0]

    def string(self, what: str) -> str:
        raw = self.take(self.u16(what), what)
        if not raw or raw[-1] != 0:
            raise ModelError(f"CTranslate2 model '{self.path}': malformed {what} at offset {self.pos - len(raw)}")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise ModelError(f"CTranslate2 model '{self.path}': {what} is not UTF-8") from None


class CT2Model:
    """A parsed CTranslate2 model file; variable data stays memory-mapped."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            if self.path.is_dir():
                raise ModelError(f"CTranslate2 model path '{self.path}' is a directory, expected model.bin")
            if self.path.stat().st_size == 0:
                raise ModelError(f"CTranslate2 model '{self.path}' is empty (0 bytes)")
            self._buf: np.ndarray = np.memmap(self.path, dtype=np.uint8, mode="r")
        except FileNotFoundError:
            raise ModelError(f"CTranslate2 model '{self.path}' does not exist") from None
        except (OSError, ValueError) as e:
            raise ModelError(f"cannot map CTranslate2 model '{self.path}': {e}") from None
        self.variables: dict[str, CT2Variable] = {}
        self.aliases: dict[str, str] = {}
        self._parse()

    def _parse(self) -> None:
        c = _Cursor(self._buf, self.path)
        self.binary_version = c.u32("the binary version")
        if not 1 <= self.binary_version <= MAX_BINARY_VERSION:
            raise ModelError(
                f"'{self.path}' is not a CTranslate2 model this reader knows "
                f"(binary version {self.binary_version}, supported 1..{MAX_BINARY_VERSION})"
            )
        if self.binary_version >= 2:
            self.spec_name = c.string("the spec name")
            self.spec_revision = c.u32("the spec revision")
        else:
            self.spec_name, self.spec_revision = "", 1
        n_variables = c.u32("the variable count")
        for i in range(n_variables):
            name = c.string(f"the name of variable #{i}")
            rank = c.u8(f"the rank of '{name}'")
            shape = struct.unpack(f"<{rank}I", c.take(4 * rank, f"the shape of '{name}'"))
            code = c.u8(f"the dtype of '{name}'")
            count = c.u32(f"the size of '{name}'")
            if self.binary_version < 4:
                item_size = code
                if item_size not in _LEGACY_ITEM_SIZES:
                    raise ModelError(f"CTranslate2 model '{self.path}': '{name}' has item size {item_size}")
                code, nbytes = _LEGACY_ITEM_SIZES[item_size], count * item_size
            else:
                nbytes = count
            if code not in CT2_DTYPES:
                raise ModelError(f"CTranslate2 model '{self.path}': '{name}' has unknown dtype code {code}")
            n_elements = math.prod(shape)
            if nbytes != n_elements * CT2_DTYPES[code][1].itemsize:
                raise ModelError(
                    f"CTranslate2 model '{self.path}': '{name}' holds {nbytes} bytes, "
                    f"shape {shape} of {CT2_DTYPES[code][0]} needs {n_elements * CT2_DTYPES[code][1].itemsize}"
                )
            offset = c.pos
            if offset + nbytes > self._buf.size:
                raise ModelError(
                    f"CTranslate2 model '{self.path}' is truncated: '{name}' needs {nbytes} bytes "
                    f"at offset {offset} but the file is {self._buf.size} bytes"
                )
            c.pos = offset + nbytes
            if name in self.variables:
                raise ModelError(f"CTranslate2 model '{self.path}': variable '{name}' appears twice")
            self.variables[name] = CT2Variable(name, tuple(shape), code, offset, nbytes)
        if self.binary_version >= 3:
            for i in range(c.u32("the alias count")):
                alias = c.string(f"alias #{i}")
                self.aliases[alias] = c.string(f"the target of alias '{alias}'")
        if c.pos != self._buf.size:
            raise ModelError(
                f"CTranslate2 model '{self.path}' has {self._buf.size - c.pos} unexpected bytes at its end"
            )

    # -- access -----------------------------------------------------------

    def resolve(self, name: str) -> str | None:
        """The stored variable behind ``name`` (following aliases), or None."""
        seen = set()
        while name not in self.variables:
            if name in seen or name not in self.aliases:
                return None
            seen.add(name)
            name = self.aliases[name]
        return name

    def __contains__(self, name: str) -> bool:
        return self.resolve(name) is not None

    def variable(self, name: str) -> CT2Variable:
        target = self.resolve(name)
        if target is None:
            raise ModelError(f"CTranslate2 model '{self.path}' has no variable '{name}'")
        return self.variables[target]

    def raw(self, name: str) -> np.ndarray:
        """The stored array, a read-only view of the mapped file."""
        var = self.variable(name)
        data = self._buf[var.offset : var.offset + var.nbytes].view(CT2_DTYPES[var.dtype_code][1])
        return data.reshape(var.shape)

    def scalar(self, name: str) -> int | float:
        var = self.variable(name)
        if not var.is_scalar:
            raise ModelError(f"CTranslate2 variable '{name}' has shape {var.shape}, expected a scalar")
        return self.raw(name).item()

    def tensor(self, name: str, rows: slice | None = None) -> np.ndarray:
        """The variable as floats, dequantized if needed, optionally only ``rows``.

        float16 and float32 data come back as (zero-copy) views in their stored
        type; bfloat16, int8 and int16 are expanded to float32.
        """
        var = self.variable(name)
        data = self.raw(name)
        if rows is not None:
            data = data[rows]
        kind = var.dtype_name
        if kind in ("float32", "float16"):
            return data
        if kind == "bfloat16":  # the high half of a float32
            return (data.astype(np.uint32) << 16).view(np.float32)
        if kind in ("int8", "int16"):
            return data.astype(np.float32) / self._scale(name, var, rows)
        raise ModelError(f"CTranslate2 variable '{name}' has dtype {kind}, not a float tensor")

    def _scale(self, name: str, var: CT2Variable, rows: slice | None) -> np.ndarray:
        # Aliased weights share their target's scale (CTranslate2 aliases X_scale too).
        scale_name = f"{name}_scale" if f"{name}_scale" in self else f"{var.name}_scale"
        if scale_name not in self:
            raise ModelError(f"CTranslate2 model '{self.path}': quantized '{name}' has no '{scale_name}'")
        scale = self.tensor(scale_name).astype(np.float32)
        if scale.ndim == 0:  # int16: one scale for the whole matrix
            return scale
        if var.shape and scale.shape == var.shape[:1]:  # int8: one scale per output row
            if rows is not None:
                scale = scale[rows]
            return scale.reshape(scale.shape + (1,) * (len(var.shape) - 1))
        raise ModelError(f"CTranslate2 variable '{scale_name}' has shape {scale.shape}, not fitting {var.shape}")

    def close(self) -> None:
        """Drop the mapping (views already handed out keep it alive until freed)."""
        self._buf = np.empty(0, dtype=np.uint8)

    def __enter__(self) -> CT2Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
