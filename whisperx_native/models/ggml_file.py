"""The whisper.cpp model file ("ggml" legacy format) as code, in one place.

This module mirrors ``whisper_model_load`` of whisper.cpp 1.8.5
(src/whisper.cpp). All numbers are little-endian::

    uint32      magic 0x67676d6c ("ggml")
    int32 x 11  hparams: n_vocab, n_audio_ctx, n_audio_state, n_audio_head,
                n_audio_layer, n_text_ctx, n_text_state, n_text_head,
                n_text_layer, n_mels, ftype (+ 1000 x quantization version;
                our mixed files: patches 0004 and 0029, see DECODER_FTYPE_FACTOR)
    int32       n_mel, int32 n_fft, then float32[n_mel * n_fft] mel filterbank
    int32       n_tokens, then per token: uint32 length, bytes[length]
    tensors, one after the other until end of file, each:
        int32 n_dims, int32 name_length, int32 ggml_type,
        int32 ne[n_dims]  (ggml order: fastest-varying first, i.e. the
                           numpy shape reversed),
        bytes name[name_length],
        raw data (no alignment padding)

whisper.cpp trusts this input: an unknown ftype trips a GGML_ASSERT, more than
four dims overflow a stack array, absurd lengths allocate gigabytes, and F32
conv kernels abort inside the CPU im2col kernel. :func:`validate` therefore
checks every field against what whisper.cpp can actually run, by reading the
header, vocabulary and tensor table only (tensor data is skipped with seeks),
so a file that passes it is safe to hand to whisper.cpp.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import ModelError, OptionError, UsageError

__all__ = [
    "FTYPE_TO_GGML_TYPE",
    "GGML_FILE_MAGIC",
    "GGML_QNT_VERSION",
    "GGML_QNT_VERSION_FACTOR",
    "GGML_TYPES",
    "HEADER_BYTES",
    "MEL_FILTERS_OFFSET",
    "SUPPORTED_FTYPES",
    "GGMLType",
    "GGMLWriter",
    "read_mel_filters",
    "HParams",
    "Header",
    "ModelInfo",
    "TensorInfo",
    "TensorSpec",
    "expected_tensors",
    "ggml_type",
    "read_header",
    "read_vocab",
    "validate",
    "vocab_offset",
]

GGML_FILE_MAGIC = 0x67676D6C  # "ggml"; the only magic whisper_model_load accepts
GGML_QNT_VERSION = 2
GGML_QNT_VERSION_FACTOR = 1000

# Architecture constants every released Whisper checkpoint (OpenAI, distil-,
# turbo and fine-tunes) shares; whisper.cpp's 30-second windowing and
# language-token arithmetic assume them.
WHISPER_N_AUDIO_CTX = 1500
WHISPER_N_TEXT_CTX = 448
WHISPER_HEAD_DIM = 64
WHISPER_N_FFT_BINS = 201  # 1 + WHISPER_N_FFT / 2; whisper.cpp indexes its FFT output with it
WHISPER_N_MELS = (80, 128)  # 128 for large-v3
N_VOCAB_ENGLISH = 51864
N_VOCAB_MULTILINGUAL = 51865
N_VOCAB_LARGE_V3 = 51866
WHISPER_N_VOCAB = (N_VOCAB_ENGLISH, N_VOCAB_MULTILINGUAL, N_VOCAB_LARGE_V3)
# Every Whisper tokenizer starts with the 50256 ordinary GPT-2 byte-level tokens.
MIN_VOCAB_TOKENS = 50256
MAX_TOKEN_BYTES = 256  # the longest real token is 128 bytes
MAX_LAYERS = 64
MAX_HEADS = 64

_MODEL_TYPES = {4: "tiny", 6: "base", 12: "small", 24: "medium", 32: "large"}


# --------------------------------------------------------------------------
# ggml types


@dataclass(frozen=True)
class GGMLType:
    """One entry of ggml's type_traits table (ggml/src/ggml.c)."""

    id: int
    name: str
    block_size: int  # elements per block
    type_size: int  # bytes per block

    @property
    def is_quantized(self) -> bool:
        return self.block_size > 1

    @property
    def stored_as_bytes(self) -> bool:
        """Written from encoded bytes rather than a numpy float array (numpy has no bfloat16)."""
        return self.is_quantized or self.name == "bf16"

    def nbytes(self, ne: Sequence[int]) -> int:
        """Bytes of a tensor with ggml dims ``ne`` (rows must hold whole blocks)."""
        if not ne or ne[0] % self.block_size:
            raise ModelError(f"{self.name}: row of {ne[0] if ne else 0} elements is not a whole number of blocks")
        n = self.type_size * (ne[0] // self.block_size)
        for d in ne[1:]:
            n *= d
        return n


def _types(*rows: tuple[int, str, int, int]) -> dict[int, GGMLType]:
    return {r[0]: GGMLType(*r) for r in rows}


# id, name, block size, bytes per block -- ggml 1.8.5 (block sizes from ggml-common.h).
GGML_TYPES: dict[int, GGMLType] = _types(
    (0, "f32", 1, 4),
    (1, "f16", 1, 2),
    (2, "q4_0", 32, 18),
    (3, "q4_1", 32, 20),
    (6, "q5_0", 32, 22),
    (7, "q5_1", 32, 24),
    (8, "q8_0", 32, 34),
    (9, "q8_1", 32, 36),
    (10, "q2_K", 256, 84),
    (11, "q3_K", 256, 110),
    (12, "q4_K", 256, 144),
    (13, "q5_K", 256, 176),
    (14, "q6_K", 256, 210),
    (15, "q8_K", 256, 292),
    (16, "iq2_xxs", 256, 66),
    (17, "iq2_xs", 256, 74),
    (18, "iq3_xxs", 256, 98),
    (19, "iq1_s", 256, 50),
    (20, "iq4_nl", 32, 18),
    (21, "iq3_s", 256, 110),
    (22, "iq2_s", 256, 82),
    (23, "iq4_xs", 256, 136),
    (24, "i8", 1, 1),
    (25, "i16", 1, 2),
    (26, "i32", 1, 4),
    (27, "i64", 1, 8),
    (28, "f64", 1, 8),
    (29, "iq1_m", 256, 56),
    (30, "bf16", 1, 2),
    (34, "tq1_0", 256, 54),
    (35, "tq2_0", 256, 66),
    (39, "mxfp4", 32, 17),
    (40, "nvfp4", 64, 36),
    (41, "q1_0", 128, 18),
)
F32 = GGML_TYPES[0]
F16 = GGML_TYPES[1]
_TYPES_BY_NAME = {t.name.lower(): t for t in GGML_TYPES.values()}

# enum ggml_ftype -> ggml_type, as ggml_ftype_to_ggml_type maps it. Any other
# value makes that function GGML_ASSERT (abort) before whisper.cpp can refuse it.
FTYPE_TO_GGML_TYPE: dict[int, GGMLType] = {
    ftype: _TYPES_BY_NAME[name]
    for ftype, name in {
        0: "f32",  # GGML_FTYPE_ALL_F32
        1: "f16",  # GGML_FTYPE_MOSTLY_F16
        2: "q4_0",
        3: "q4_1",
        # 4 (MOSTLY_Q4_1_SOME_F16) maps to nothing; 5, 6 were removed
        7: "q8_0",
        8: "q5_0",
        9: "q5_1",
        10: "q2_k",
        11: "q3_k",
        12: "q4_k",
        13: "q5_k",
        14: "q6_k",
        15: "iq2_xxs",
        16: "iq2_xs",
        17: "iq3_xxs",
        18: "iq1_s",
        19: "iq4_nl",
        20: "iq3_s",
        21: "iq2_s",
        22: "iq4_xs",
        23: "iq1_m",
        24: "bf16",
        25: "mxfp4",
        26: "nvfp4",
        27: "q1_0",
    }.items()
}

# The ftypes whisper.cpp produces and runs: F16 from its converters, the rest
# from its quantize tool. ftype 0 (all F32) is excluded on purpose: it makes the
# conv kernels F32, and ggml's CPU im2col asserts src0 is F16, aborting the
# process on the first encode.
SUPPORTED_FTYPES = frozenset({1, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 24})

# vendor/patches/0004: a ggml_ftype of 32 or more reads encoder ftype + 32 x (decoder
# ftype + 1): the decoder's (and cross-attention's) 2-D weights have a type of their own.
# Only our patched whisper.cpp reads such files (stock whisper.cpp aborts on them).
DECODER_FTYPE_FACTOR = 32

# vendor/patches/0029: + 1000000 x (embedding ftype + 1) gives the token embedding (the
# logits projection too) a type of its own: q8_0 beside q5_0 decoder layers keeps the words.
EMBEDDING_FTYPE_FACTOR = 1_000_000


def ggml_type(key: int | str) -> GGMLType:
    """Look a ggml type up by id or by name (``"f16"``, ``"q5_0"``...)."""
    t = GGML_TYPES.get(key) if isinstance(key, int) else _TYPES_BY_NAME.get(key.lower())
    if t is None:
        raise OptionError(f"unknown ggml type {key!r}")
    return t


# --------------------------------------------------------------------------
# hyperparameters


@dataclass(frozen=True)
class HParams:
    """The eleven int32 hyperparameters of the file header, in file order."""

    n_vocab: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int
    n_mels: int
    ftype: int  # raw value: ftype % 1000 is the ggml_ftype, ftype // 1000 % 1000 the quantization version

    _STRUCT = struct.Struct("<11i")

    @classmethod
    def from_bytes(cls, data: bytes) -> HParams:
        return cls(*cls._STRUCT.unpack(data))

    def to_bytes(self) -> bytes:
        return self._STRUCT.pack(*(getattr(self, f.name) for f in fields(self)))

    @property
    def base_ftype(self) -> int:
        """The ggml_ftype (whisper.cpp: ``ftype %= GGML_QNT_VERSION_FACTOR``)."""
        return self.ftype % GGML_QNT_VERSION_FACTOR

    @property
    def qntvr(self) -> int:
        return self.ftype % EMBEDDING_FTYPE_FACTOR // GGML_QNT_VERSION_FACTOR

    @property
    def encoder_ftype(self) -> int:
        """The ggml_ftype of the encoder's 2-D weights (of all of them in a plain file)."""
        return self.base_ftype % DECODER_FTYPE_FACTOR

    @property
    def decoder_ftype(self) -> int:
        """The ggml_ftype of the decoder's 2-D weights (vendor/patches/0004)."""
        code = self.base_ftype // DECODER_FTYPE_FACTOR
        return code - 1 if code else self.encoder_ftype

    @property
    def embedding_ftype(self) -> int:
        """The ggml_ftype of the token embedding (vendor/patches/0029)."""
        code = self.ftype // EMBEDDING_FTYPE_FACTOR
        return code - 1 if code > 0 else self.decoder_ftype

    @property
    def mixed(self) -> bool:
        """Whether the decoder's 2-D weights have a type of their own."""
        return self.base_ftype >= DECODER_FTYPE_FACTOR

    @property
    def own_embedding(self) -> bool:
        """Whether the token embedding has a type of its own."""
        return self.ftype >= EMBEDDING_FTYPE_FACTOR

    @property
    def wtype(self) -> GGMLType:
        """Type of the big 2-D weights (the encoder's); KeyError for an unknown ftype."""
        return FTYPE_TO_GGML_TYPE[self.encoder_ftype]

    @property
    def decoder_wtype(self) -> GGMLType:
        """Type of the decoder's and cross-attention's 2-D weights."""
        return FTYPE_TO_GGML_TYPE[self.decoder_ftype]

    @property
    def embedding_wtype(self) -> GGMLType:
        """Type of the token embedding (the decoder's, unless the file gives it its own)."""
        return FTYPE_TO_GGML_TYPE[self.embedding_ftype]

    @property
    def type_name(self) -> str:
        """``q5_0``, ``q5_0+q8_0`` (decoder), ``q5_0+q5_0+q8_0`` (token embedding)."""
        names = [self.wtype.name]
        if self.mixed or self.own_embedding:
            names.append(self.decoder_wtype.name)
        if self.own_embedding:
            names.append(self.embedding_wtype.name)
        return "+".join(names)

    @property
    def conv_type(self) -> GGMLType:
        """whisper.cpp's ``vtype``: conv kernels are F32 only in all-F32 files."""
        return F32 if self.encoder_ftype == 0 else F16

    @property
    def is_multilingual(self) -> bool:
        return self.n_vocab >= N_VOCAB_MULTILINGUAL

    @property
    def token_eot(self) -> int:
        """The end-of-text token id (whisper.cpp's ``token_eot``: 50256, one more in a
        multilingual vocabulary); every id from it on is a special token."""
        return MIN_VOCAB_TOKENS + int(self.is_multilingual)

    @property
    def n_languages(self) -> int:
        """whisper_vocab::num_languages()."""
        return self.n_vocab - 51765 - int(self.is_multilingual)

    @property
    def model_type(self) -> str:
        """whisper.cpp's model type name, from the encoder depth."""
        return _MODEL_TYPES.get(self.n_audio_layer, "unknown")

    def check(self) -> None:
        """Raise ModelError unless whisper.cpp 1.8.5 can safely run these hparams."""
        if not -(2**31) <= self.ftype < 2**31:
            raise ModelError(f"ftype {self.ftype} does not fit in int32")
        if self.n_vocab not in WHISPER_N_VOCAB:
            raise ModelError(
                f"n_vocab {self.n_vocab} is not a Whisper vocabulary size "
                f"(expected {N_VOCAB_ENGLISH} English-only, {N_VOCAB_MULTILINGUAL} multilingual "
                f"or {N_VOCAB_LARGE_V3} large-v3)"
            )
        if self.n_audio_ctx != WHISPER_N_AUDIO_CTX:
            raise ModelError(f"n_audio_ctx {self.n_audio_ctx} is not Whisper's {WHISPER_N_AUDIO_CTX}")
        if self.n_text_ctx != WHISPER_N_TEXT_CTX:
            raise ModelError(f"n_text_ctx {self.n_text_ctx} is not Whisper's {WHISPER_N_TEXT_CTX}")
        for part in ("audio", "text"):
            state = getattr(self, f"n_{part}_state")
            head = getattr(self, f"n_{part}_head")
            layer = getattr(self, f"n_{part}_layer")
            if not 1 <= head <= MAX_HEADS:
                raise ModelError(f"n_{part}_head {head} is out of range 1..{MAX_HEADS}")
            if state != head * WHISPER_HEAD_DIM:
                raise ModelError(
                    f"n_{part}_state {state} with n_{part}_head {head} does not give "
                    f"Whisper's {WHISPER_HEAD_DIM}-wide attention heads"
                )
            if not 1 <= layer <= MAX_LAYERS:
                raise ModelError(f"n_{part}_layer {layer} is out of range 1..{MAX_LAYERS}")
        if self.n_audio_state != self.n_text_state:
            raise ModelError(f"n_audio_state {self.n_audio_state} differs from n_text_state {self.n_text_state}")
        if self.n_mels not in WHISPER_N_MELS:
            raise ModelError(f"n_mels {self.n_mels} is not 80 or 128")
        self._check_ftype()

    def _check_ftype(self) -> None:
        if self.ftype < 0:
            raise ModelError(f"ftype {self.ftype} is negative")
        qntvr = self.qntvr
        if self.base_ftype >= DECODER_FTYPE_FACTOR * (DECODER_FTYPE_FACTOR + 1):
            raise ModelError(f"ftype {self.ftype} (ggml_ftype {self.base_ftype}) is unknown to ggml")
        if qntvr > GGML_QNT_VERSION:
            raise ModelError(f"quantization version {qntvr} (ftype {self.ftype}) is newer than ggml's")
        if self.mixed and self.decoder_ftype == self.encoder_ftype:
            # one meaning, one spelling: a flipped bit must not pass as a valid header
            raise ModelError(f"ftype {self.ftype} gives the decoder the encoder's own type "
                             f"(ggml_ftype {self.encoder_ftype}): not a file we write")
        if self.own_embedding and self.embedding_ftype == self.decoder_ftype:
            raise ModelError(f"ftype {self.ftype} gives the token embedding the decoder's own type "
                             f"(ggml_ftype {self.decoder_ftype}): not a file we write")
        for base in {self.encoder_ftype, self.decoder_ftype, self.embedding_ftype}:
            self._check_one_ftype(base, qntvr)

    def _check_one_ftype(self, base: int, qntvr: int) -> None:
        wtype = FTYPE_TO_GGML_TYPE.get(base)
        if wtype is None:
            raise ModelError(f"ftype {self.ftype} (ggml_ftype {base}) is unknown to ggml")
        if base == 0:
            raise ModelError(
                "ftype 0 (all F32) is not runnable: it makes the conv kernels F32 and "
                "whisper.cpp 1.8.5 aborts on F32 conv kernels (im2col needs F16)"
            )
        if base not in SUPPORTED_FTYPES:
            raise ModelError(f"ftype {self.ftype} ({wtype.name} weights) is not supported by whisper.cpp")
        if wtype.is_quantized:
            if qntvr != GGML_QNT_VERSION:
                raise ModelError(
                    f"ftype {self.ftype}: {wtype.name} weights in quantization format v{qntvr}, "
                    f"ggml reads only v{GGML_QNT_VERSION} (re-quantize the model)"
                )
            # wtype rows are n_state or 4*n_state long and must hold whole blocks.
            if self.n_audio_state % wtype.block_size:
                raise ModelError(
                    f"{wtype.name} needs rows that are multiples of {wtype.block_size}, "
                    f"but n_audio_state is {self.n_audio_state}"
                )


# --------------------------------------------------------------------------
# the tensors whisper_model_load creates


@dataclass(frozen=True)
class TensorSpec:
    """One tensor as whisper_model_load creates it.

    ``ne`` is in ggml order (``ne[0]`` varies fastest); ``shape`` is the numpy /
    PyTorch order of the same data. ``kind`` is ``"weight"`` for the 2-D
    matrices that follow the file's ftype (F16 or quantized), ``"conv"`` for the
    F16 conv kernels and ``"f32"`` for biases, layer norms and positional
    embeddings, which are always F32.
    """

    name: str
    ne: tuple[int, ...]
    type: GGMLType
    kind: str

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(reversed(self.ne))

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.ne, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.type.nbytes(self.ne)


def expected_tensors(hp: HParams) -> list[TensorSpec]:
    """Every tensor whisper_model_load expects for ``hp``, in the order
    convert-pt-to-ggml.py writes them (PyTorch state_dict order)."""
    wtype, ctype = hp.wtype, hp.conv_type
    specs: list[TensorSpec] = []

    def weight(name: str, *ne: int) -> None:
        specs.append(TensorSpec(name, ne, wtype, "weight"))

    def f32(name: str, *ne: int) -> None:
        specs.append(TensorSpec(name, ne, F32, "f32"))

    def attention(prefix: str, n: int) -> None:
        # Whisper's key projection has no bias.
        weight(f"{prefix}.query.weight", n, n)
        f32(f"{prefix}.query.bias", n)
        weight(f"{prefix}.key.weight", n, n)
        weight(f"{prefix}.value.weight", n, n)
        f32(f"{prefix}.value.bias", n)
        weight(f"{prefix}.out.weight", n, n)
        f32(f"{prefix}.out.bias", n)

    def layer_norm(prefix: str, n: int) -> None:
        f32(f"{prefix}.weight", n)
        f32(f"{prefix}.bias", n)

    def mlp(prefix: str, n: int) -> None:
        weight(f"{prefix}.mlp.0.weight", n, 4 * n)
        f32(f"{prefix}.mlp.0.bias", 4 * n)
        weight(f"{prefix}.mlp.2.weight", 4 * n, n)
        f32(f"{prefix}.mlp.2.bias", n)
        layer_norm(f"{prefix}.mlp_ln", n)

    n = hp.n_audio_state
    f32("encoder.positional_embedding", n, hp.n_audio_ctx)
    specs.append(TensorSpec("encoder.conv1.weight", (3, hp.n_mels, n), ctype, "conv"))
    f32("encoder.conv1.bias", 1, n)  # stored 2-D, like convert-pt-to-ggml.py
    specs.append(TensorSpec("encoder.conv2.weight", (3, n, n), ctype, "conv"))
    f32("encoder.conv2.bias", 1, n)
    for i in range(hp.n_audio_layer):
        block = f"encoder.blocks.{i}"
        attention(f"{block}.attn", n)
        layer_norm(f"{block}.attn_ln", n)
        mlp(block, n)
    layer_norm("encoder.ln_post", n)

    n = hp.n_text_state
    wtype = hp.decoder_wtype  # `weight` reads it at call time: the decoder's own type from here on
    f32("decoder.positional_embedding", n, hp.n_text_ctx)
    specs.append(TensorSpec("decoder.token_embedding.weight", (n, hp.n_vocab), hp.embedding_wtype, "weight"))
    for i in range(hp.n_text_layer):
        block = f"decoder.blocks.{i}"
        attention(f"{block}.attn", n)
        layer_norm(f"{block}.attn_ln", n)
        attention(f"{block}.cross_attn", n)
        layer_norm(f"{block}.cross_attn_ln", n)
        mlp(block, n)
    layer_norm("decoder.ln", n)
    return specs


# --------------------------------------------------------------------------
# writing

_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_NUMPY_DTYPES = {0: np.dtype("<f4"), 1: np.dtype("<f2")}


class GGMLWriter:
    """Writes a whisper.cpp model file, checking each piece against the layout.

    Call :meth:`write_header` once, then :meth:`write_tensor` for every tensor
    of :func:`expected_tensors` (any order), then :meth:`finish`.
    """

    def __init__(self, fileobj: BinaryIO, hparams: HParams) -> None:
        hparams.check()
        self._f = fileobj
        self.hparams = hparams
        self._specs = {s.name: s for s in expected_tensors(hparams)}
        self._written: set[str] = set()
        self._header_done = False

    def write_header(self, mel_filters: np.ndarray, tokens: Sequence[bytes]) -> None:
        """Magic, hparams, the (n_mels, 201) float32 filterbank and the vocabulary."""
        if self._header_done:
            raise UsageError("header already written")
        hp = self.hparams
        filters = np.ascontiguousarray(mel_filters, dtype="<f4")
        if filters.shape != (hp.n_mels, WHISPER_N_FFT_BINS):
            raise ModelError(f"mel filterbank has shape {filters.shape}, expected {(hp.n_mels, WHISPER_N_FFT_BINS)}")
        if not np.isfinite(filters).all():
            raise ModelError("mel filterbank contains NaN or infinity")
        if not MIN_VOCAB_TOKENS <= len(tokens) <= hp.n_vocab:
            raise ModelError(f"{len(tokens)} vocabulary tokens, expected {MIN_VOCAB_TOKENS}..{hp.n_vocab}")
        parts = [_U32.pack(GGML_FILE_MAGIC), hp.to_bytes()]
        parts += [_I32.pack(filters.shape[0]), _I32.pack(filters.shape[1]), filters.tobytes()]
        parts.append(_I32.pack(len(tokens)))
        for i, tok in enumerate(tokens):
            if len(tok) > MAX_TOKEN_BYTES:
                raise ModelError(f"token {i} is {len(tok)} bytes long (max {MAX_TOKEN_BYTES})")
            parts += [_U32.pack(len(tok)), bytes(tok)]
        self._f.write(b"".join(parts))
        self._header_done = True

    def write_tensor(self, name: str, data: np.ndarray) -> None:
        """Write one tensor; ``data`` has the numpy shape and float dtype of its spec,
        or, for a quantized tensor, is the flat uint8 array of its encoded blocks."""
        if not self._header_done:
            raise UsageError("write_header() must come first")
        spec = self._specs.get(name)
        if spec is None:
            raise ModelError(f"tensor {name!r} is not part of a whisper.cpp model")
        if name in self._written:
            raise ModelError(f"tensor {name!r} written twice")
        if spec.type.stored_as_bytes:
            if data.dtype != np.uint8 or data.ndim != 1 or data.size != spec.nbytes:
                raise ModelError(f"tensor {name!r} ({spec.type.name}) needs {spec.nbytes} uint8 bytes, "
                                 f"got {data.dtype} of shape {data.shape}")
        else:
            dtype = _NUMPY_DTYPES.get(spec.type.id)
            if dtype is None:
                raise UsageError(f"writing {spec.type.name} tensors is not supported")
            if data.dtype != dtype:
                raise ModelError(f"tensor {name!r} has dtype {data.dtype}, expected {dtype} ({spec.type.name})")
            if tuple(data.shape) != spec.shape:
                raise ModelError(f"tensor {name!r} has shape {tuple(data.shape)}, expected {spec.shape}")
        encoded = name.encode("ascii")
        head = struct.pack(f"<3i{len(spec.ne)}i", len(spec.ne), len(encoded), spec.type.id, *spec.ne)
        self._f.write(head + encoded)
        self._f.write(np.ascontiguousarray(data).data)
        self._written.add(name)

    def finish(self) -> None:
        """Check that every tensor was written."""
        missing = [n for n in self._specs if n not in self._written]
        if missing:
            raise ModelError(f"{len(missing)} tensors not written, e.g. {missing[0]!r}")


# --------------------------------------------------------------------------
# reading and validation


@dataclass(frozen=True)
class Header:
    """Everything before the tensor table."""

    path: Path
    file_size: int
    hparams: HParams
    n_tokens: int  # vocabulary entries stored (whisper.cpp synthesizes the rest)
    tensors_offset: int  # where the tensor table starts


@dataclass(frozen=True)
class TensorInfo:
    name: str
    ne: tuple[int, ...]  # ggml order
    type: GGMLType
    offset: int  # of the raw data in the file
    nbytes: int

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(reversed(self.ne))


@dataclass(frozen=True)
class ModelInfo:
    """A validated whisper.cpp model file."""

    path: Path
    file_size: int
    hparams: HParams
    n_tokens: int
    tensors: tuple[TensorInfo, ...]  # in file order
    #: The (n_mels, 201) float32 filterbank stored in the file (what features.MelBank takes):
    #: read with the header, so nothing parses the file again for it.
    mel_filters: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def ftype(self) -> int:
        return self.hparams.base_ftype

    @property
    def wtype(self) -> GGMLType:
        return self.hparams.wtype

    @property
    def model_type(self) -> str:
        return self.hparams.model_type

    @property
    def is_multilingual(self) -> bool:
        return self.hparams.is_multilingual

    @property
    def token_eot(self) -> int:
        return self.hparams.token_eot

    @property
    def weight_bytes(self) -> int:
        """Bytes whisper.cpp allocates for the weights."""
        return sum(t.nbytes for t in self.tensors)


#: The file's layout up to the vocabulary: the magic and the eleven hparams, then the
#: filterbank's (n_mel, n_fft) int32 pair and its n_mel x 201 float32 values.
HEADER_BYTES = 4 + HParams._STRUCT.size
MEL_FILTERS_OFFSET = HEADER_BYTES + 8


def vocab_offset(n_mels: int) -> int:
    """Where the vocabulary (its int32 token count) starts in a file of ``n_mels`` bands."""
    return MEL_FILTERS_OFFSET + 4 * n_mels * WHISPER_N_FFT_BINS


_VOCAB_CHUNK = 1 << 20
_TENSOR_HEAD = struct.Struct("<3i")


class _FileReader:
    """Unbuffered reads with truncation reporting: tensor data is never read."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f = f
        self.size = size

    def read_at(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``offset`` (fewer only at end of file)."""
        self.f.seek(offset)
        chunks, want = [], n
        while want > 0:
            chunk = self.f.read(want)
            if not chunk:
                break
            chunks.append(chunk)
            want -= len(chunk)
        return b"".join(chunks)

    def exact(self, offset: int, n: int, what: str) -> bytes:
        data = self.read_at(offset, n) if offset + n <= self.size else b""
        if len(data) != n:
            raise ModelError(f"truncated: {what} needs {n} bytes at offset {offset} but the file is {self.size} bytes")
        return data


def _open(path: str | os.PathLike[str]) -> tuple[Path, BinaryIO, int]:
    p = Path(path)
    try:
        # stat before open: opening a FIFO or device could block or have side effects
        st = os.stat(p)
    except FileNotFoundError:
        raise ModelError(f"model file '{p}' not found") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL in the name
        raise ModelError(f"cannot access model file '{p}': {getattr(e, 'strerror', None) or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ModelError(f"model path '{p}' is a directory, not a model file")
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"model path '{p}' is not a regular file")
    try:
        f = open(p, "rb", buffering=0)  # noqa: SIM115 - closed by the caller
    except OSError as e:
        raise ModelError(f"cannot open model file '{p}': {e.strerror or e}") from None
    size = os.fstat(f.fileno()).st_size
    if size == 0:
        f.close()
        raise ModelError(f"model file '{p}' is empty (0 bytes)")
    return p, f, size


def _parse_header(r: _FileReader, collect_tokens: bool
                  ) -> tuple[HParams, int, int, list[bytes] | None, np.ndarray]:
    """Header, mel filters and vocabulary; returns (hparams, n_tokens, tensors_offset, tokens, filters)."""
    head = r.exact(0, 4, "the magic number")
    (magic,) = _U32.unpack(head)
    if magic != GGML_FILE_MAGIC:
        if magic == 0x46554747:  # "GGUF"
            raise ModelError("this is a GGUF file; whisper.cpp 1.8.5 loads only legacy ggml whisper files")
        raise ModelError(f"bad magic 0x{magic:08x} (expected 0x{GGML_FILE_MAGIC:08x}, 'ggml'): not a whisper.cpp model")
    hp = HParams.from_bytes(r.exact(4, HParams._STRUCT.size, "the hyperparameters"))
    hp.check()

    filters = _read_filters(r, hp)
    if not np.isfinite(filters).all():
        raise ModelError("mel filterbank contains NaN or infinity")
    offset = vocab_offset(hp.n_mels)

    (n_tokens,) = _I32.unpack(r.exact(offset, 4, "the vocabulary size"))
    if not MIN_VOCAB_TOKENS <= n_tokens <= hp.n_vocab:
        raise ModelError(f"vocabulary has {n_tokens} tokens, expected {MIN_VOCAB_TOKENS}..{hp.n_vocab} (n_vocab)")
    offset += 4
    offset, tokens = _parse_vocab(r, offset, n_tokens, collect_tokens)
    return hp, n_tokens, offset, tokens, filters


def _read_filters(r: _FileReader, hp: HParams) -> np.ndarray:
    """The (n_mels, 201) little-endian float32 filterbank right after the hparams."""
    n_mel, n_fft = struct.unpack("<2i", r.exact(HEADER_BYTES, 8, "the mel filterbank size"))
    if n_mel != hp.n_mels or n_fft != WHISPER_N_FFT_BINS:
        raise ModelError(f"mel filterbank is {n_mel}x{n_fft}, expected {hp.n_mels}x{WHISPER_N_FFT_BINS}")
    raw = r.exact(MEL_FILTERS_OFFSET, 4 * n_mel * n_fft, "the mel filterbank")
    return np.frombuffer(raw, dtype="<f4").reshape(n_mel, n_fft)


def _parse_vocab(r: _FileReader, offset: int, n_tokens: int, collect: bool) -> tuple[int, list[bytes] | None]:
    # Records are variable-length, so read ahead in big chunks and parse in memory.
    tokens: list[bytes] | None = [] if collect else None
    unpack = _U32.unpack_from
    buf, pos, base = b"", 0, offset  # buf[0] is at file offset `base`
    refill_at = 4 + MAX_TOKEN_BYTES
    has_space = False
    for i in range(n_tokens):
        if len(buf) - pos < refill_at and base + len(buf) < r.size:
            base += pos
            buf = buf[pos:] + r.read_at(base + len(buf) - pos, _VOCAB_CHUNK)
            pos = 0
        if pos + 4 > len(buf):
            raise ModelError(f"truncated: vocabulary ends at token {i} of {n_tokens} (file is {r.size} bytes)")
        (n,) = unpack(buf, pos)
        if n > MAX_TOKEN_BYTES:
            raise ModelError(f"vocabulary token {i} claims {n} bytes (max {MAX_TOKEN_BYTES}) at offset {base + pos}")
        pos += 4 + n
        if pos > len(buf):
            raise ModelError(f"truncated: vocabulary token {i} of {n_tokens} runs past the end of the file")
        if n == 1 and buf[pos - 1] == 0x20:
            has_space = True
        if tokens is not None:
            tokens.append(bytes(buf[pos - n : pos]))
    if not has_space:
        # whisper_full looks it up with std::map::at to suppress blanks: without it
        # the uncaught std::out_of_range aborts the process on the first transcription.
        raise ModelError("the vocabulary has no ' ' token, which whisper.cpp needs (it aborts without it)")
    return base + pos, tokens


def _parse_tensors(r: _FileReader, hp: HParams, offset: int) -> tuple[TensorInfo, ...]:
    specs = {s.name: s for s in expected_tensors(hp)}
    max_name = max(len(n) for n in specs)
    found: dict[str, TensorInfo] = {}
    while offset < r.size:
        if len(found) == len(specs):
            raise ModelError(f"{r.size - offset} unexpected bytes after the last tensor (offset {offset})")
        where = f"tensor #{len(found)} at offset {offset}"
        n_dims, name_len, ttype = _TENSOR_HEAD.unpack(r.exact(offset, 12, f"the header of {where}"))
        if not 1 <= n_dims <= 4:
            raise ModelError(f"{where}: n_dims {n_dims} is not 1..4")
        if not 1 <= name_len <= max_name:
            raise ModelError(f"{where}: name length {name_len} is not 1..{max_name}")
        rest = r.exact(offset + 12, 4 * n_dims + name_len, f"the dims and name of {where}")
        ne = struct.unpack_from(f"<{n_dims}i", rest)
        raw_name = rest[4 * n_dims :]
        name = raw_name.decode("ascii", errors="replace")
        spec = specs.get(name)
        if spec is None:
            raise ModelError(f"{where}: unknown tensor name {raw_name!r}")
        if name in found:
            raise ModelError(f"{where}: tensor '{name}' appears twice")
        ttype_obj = GGML_TYPES.get(ttype)
        if ttype_obj is None:
            raise ModelError(f"tensor '{name}': unknown ggml type id {ttype}")
        if _pad4(ne) != _pad4(spec.ne):
            raise ModelError(f"tensor '{name}' has dims {list(ne)} (ggml order), expected {list(spec.ne)}")
        if ttype != spec.type.id:
            hint = " (whisper.cpp aborts on non-F16 conv kernels)" if spec.kind == "conv" else ""
            raise ModelError(f"tensor '{name}' has type {ttype_obj.name}, expected {spec.type.name}{hint}")
        data_offset = offset + 12 + len(rest)
        end = data_offset + spec.nbytes
        if end > r.size:
            raise ModelError(
                f"truncated: tensor '{name}' needs {spec.nbytes} bytes of data at offset "
                f"{data_offset} but the file is {r.size} bytes"
            )
        found[name] = TensorInfo(name, spec.ne, spec.type, data_offset, spec.nbytes)
        offset = end
    if len(found) < len(specs):
        if not found:
            raise ModelError("truncated or incomplete: no tensors at all (a header-only file)")
        missing = [n for n in specs if n not in found]
        raise ModelError(
            f"truncated or incomplete: {len(missing)} of {len(specs)} tensors missing, e.g. '{missing[0]}'"
        )
    return tuple(found.values())


def _pad4(ne: Sequence[int]) -> tuple[int, ...]:
    return tuple(ne) + (1,) * (4 - len(ne))


@contextlib.contextmanager
def _reading(path: str | os.PathLike[str]) -> Iterator[_FileReader]:
    """Open ``path`` and turn every problem inside into one ModelError naming the file."""
    p, f, size = _open(path)
    with f:
        try:
            yield _FileReader(f, size)
        except ModelError as e:
            raise ModelError(f"invalid whisper.cpp model file '{p}': {e}") from None
        except OSError as e:
            raise ModelError(f"cannot read model file '{p}': {e}") from None


def read_header(path: str | os.PathLike[str]) -> Header:
    """Read and check the magic, hparams, mel filters and vocabulary."""
    with _reading(path) as r:
        hp, n_tokens, offset, _, _ = _parse_header(r, collect_tokens=False)
    return Header(Path(path), r.size, hp, n_tokens, offset)


def read_vocab(path: str | os.PathLike[str]) -> list[bytes]:
    """The vocabulary tokens stored in the file: the ordinary ones (whisper.cpp
    synthesizes the special tokens up to n_vocab)."""
    with _reading(path) as r:
        _, _, _, tokens, _ = _parse_header(r, collect_tokens=True)
    assert tokens is not None
    return tokens


def read_mel_filters(path: str | os.PathLike[str]) -> np.ndarray:
    """The mel filterbank stored in the file, float32 (n_mel, 201): what whisper.cpp
    multiplies its power spectrum with."""
    with _reading(path) as r:
        hp = HParams.from_bytes(r.exact(4, HParams._STRUCT.size, "the hyperparameters"))
        return _read_filters(r, hp).astype(np.float32)


def validate(path: str | os.PathLike[str]) -> ModelInfo:
    """Check a whisper.cpp model file completely without reading tensor data.

    Returns what it found; raises :class:`ModelError` naming the file and the
    first problem otherwise.
    """
    with _reading(path) as r:
        hp, n_tokens, offset, _, filters = _parse_header(r, collect_tokens=False)
        tensors = _parse_tensors(r, hp, offset)
    mel = filters.astype(np.float32)
    mel.flags.writeable = False  # shared by everything that holds the ModelInfo
    return ModelInfo(Path(path), r.size, hp, n_tokens, tensors, mel)
