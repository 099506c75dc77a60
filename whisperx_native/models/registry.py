"""The models the store knows by name: architecture, file, checksum, memory needs.

A name is an architecture (``"tiny.en"``, ``"large-v3-turbo"``) optionally
followed by a quantization type (``"medium.en-q5_0"``). Everything about a name
is derived from its hyperparameters: the exact weight bytes (from the tensor
table whisper.cpp allocates), the KV caches (exact formulas from
``whisper_init_state``) and the compute buffer (the largest of four graphs'
needs, linear fits calibrated on measurements, see ``_COMPUTE_FIT``), so a caller
can tell before loading whether a model fits a memory budget.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ..errors import ModelError
from .ggml_file import (
    EMBEDDING_FTYPE_FACTOR,
    GGML_QNT_VERSION,
    GGML_QNT_VERSION_FACTOR,
    HParams,
    expected_tensors,
    ggml_type,
)

__all__ = ["ALIGNMENT_HEADS", "ARCHS", "kv_self_cells", "QUANT_TYPES", "MEASURED_STATE", "ModelSpec", "MemoryEstimate",
           "alignment_heads_for", "estimate_memory", "get", "names", "ftype_of", "parse_name"]

FTYPE_F16 = 1


def _hp(n_vocab: int, n_state: int, n_audio_layer: int, n_text_layer: int, n_mels: int = 80) -> HParams:
    heads = n_state // 64
    return HParams(n_vocab, 1500, n_state, heads, n_audio_layer, 448, n_state, heads, n_text_layer, n_mels, FTYPE_F16)


#: Architecture name -> hyperparameters of its F16 file (OpenAI's checkpoints).
ARCHS: Dict[str, HParams] = {
    "tiny": _hp(51865, 384, 4, 4),
    "tiny.en": _hp(51864, 384, 4, 4),
    "base": _hp(51865, 512, 6, 6),
    "base.en": _hp(51864, 512, 6, 6),
    "small": _hp(51865, 768, 12, 12),
    "small.en": _hp(51864, 768, 12, 12),
    "medium": _hp(51865, 1024, 24, 24),
    "medium.en": _hp(51864, 1024, 24, 24),
    "large-v3": _hp(51866, 1280, 32, 32, n_mels=128),
    "large-v3-turbo": _hp(51866, 1280, 32, 4, n_mels=128),
}

#: Architecture name -> whisper.cpp's alignment-head preset (openai-whisper's _ALIGNMENT_HEADS):
#: the cross-attention heads whose attention follows the speech, for word timestamps.
ALIGNMENT_HEADS: Dict[str, str] = {arch: arch for arch in ARCHS}

#: Architectures with a preset that the store does not install (80 mel bands, 32 + 32 layers:
#: the same shape, so a file of either cannot be told from the other by its header).
_OTHER_PRESETS: Dict[str, Tuple[int, int, bool, int]] = {
    "large-v1": (32, 20, True, 80),
    "large-v2": (32, 20, True, 80),
}


def alignment_heads_for(hp: HParams) -> "Tuple[str | Tuple[str, int], bool]":
    """(alignment heads, exact) for a model file's hyperparameters: the preset of the one
    architecture of that shape (decoder layers and heads, multilingual, mel bands), with
    ``exact=True``; where no or more than one architecture has it (large-v1 / large-v2, a
    distilled decoder), every head of the last half of the decoder layers (whisper.cpp's
    "n_top_most"), ``exact=False``. Fine-tuned weights keep their architecture's heads."""
    shape = (hp.n_text_layer, hp.n_text_head, hp.is_multilingual, hp.n_mels)
    known = {arch: (a.n_text_layer, a.n_text_head, a.is_multilingual, a.n_mels) for arch, a in ARCHS.items()}
    known.update(_OTHER_PRESETS)
    matches = [arch for arch, s in known.items() if s == shape]
    if len(matches) == 1:
        return ALIGNMENT_HEADS.get(matches[0], matches[0]), True
    return ("top", max(1, hp.n_text_layer // 2)), False


#: Quantization types we write (ggml_ftype of each). K-quants need rows that are
#: multiples of 256, which tiny (384 wide) does not have.
QUANT_TYPES: Dict[str, int] = {
    "q8_0": 7, "q5_0": 8, "q5_1": 9, "q4_0": 2, "q4_1": 3,
    "q2_k": 10, "q3_k": 11, "q4_k": 12, "q5_k": 13, "q6_k": 14,
    # Not a quantization but the same kind of derived file: F16 weights rounded to bfloat16,
    # which llamafile's kernels multiply with AVX512-BF16 at twice the F16 rate.
    "bf16": 24,
    # bf16 encoder (compute-bound GEMMs) + q8_0 decoder (memory-bound, reads the token
    # embedding per token): ftype 24 + 32 x (7 + 1), vendor/patches/0004. Ours only.
    "bf16q8": 24 + 32 * (7 + 1),
    # q5_0 encoder + q8_0 decoder: the decoder's precision is what holds the words (tiny.en,
    # the speech sets of bench/memory_table.py: q5_0 everywhere lost 3.9 points on the clips,
    # a q5_0 encoder alone none), at 41 MB against bf16q8's 50 and q8_0's 44. Ours only.
    "q5q8": 8 + 32 * (7 + 1),
    # q5_0 everywhere but the token embedding, q8_0: the embedding is the logits projection,
    # where 5 bits lose words (tiny.en long-form WER 17.89 % against q5q8's 17.10) and the
    # decoder layers' 5 bits do not (17.02): 3.5 MB under q5q8. vendor/patches/0029. Ours only.
    "q5e8": 8 + EMBEDDING_FTYPE_FACTOR * (7 + 1),
}

#: SHA-1 of the official files, from whisper.cpp 1.8.5 models/README.md.
PUBLISHED_SHA1: Dict[str, str] = {
    "tiny": "bd577a113a864445d4c299885e0cb97d4ba92b5f",
    "tiny.en": "c78c86eb1a8faa21b369bcd33207cc90d64ae9df",
    "base": "465707469ff3a37a2b9b8d8f89f2f99de7299dac",
    "base.en": "137c40403d78fd54d454da0f9bd998f78703390c",
    "small": "55356645c2b361a969dfd0ef2c5a50d530afd8d5",
    "small.en": "db8a495a91d927739e50b3fc1cc4c6b8f6c2d022",
    "medium": "fd9727b6e1217c2f614f9b698455c4ffd82463b4",
    "medium.en": "8c30f0e44ce9560643ebd10bbe50cd20eafd3723",
    "large-v3": "ad82bf6a9043ceed055076d0fd39f5f186ff8062",
    "large-v3-q5_0": "e6e2ed78495d403bef4b7cff42ef4aaadcfea8de",
    "large-v3-turbo": "4af2b29d7ec73d781377bfd1758ca957a807e941",
    "large-v3-turbo-q5_0": "e050f7970618a659205450ad97eb95a18d69c9ee",
}

#: Files whisper.cpp's models/download-ggml-model.sh offers (besides every F16 one).
PUBLISHED_QUANTIZED = frozenset({
    "tiny-q5_1", "tiny.en-q5_1", "tiny-q8_0", "base-q5_1", "base.en-q5_1", "base-q8_0",
    "small-q5_1", "small.en-q5_1", "small-q8_0", "medium-q5_0", "medium.en-q5_0", "medium-q8_0",
    "large-v3-q5_0", "large-v3-turbo-q5_0", "large-v3-turbo-q8_0",
})

# Header bytes before the tensors: magic + hparams, the mel filterbank and about
# 0.6 MB of vocabulary; plus a per-tensor record header.
_HEADER_BYTES = 48 + 8 + 4 * 201 + 600_000
_TENSOR_HEADER_BYTES = 80

# What each graph of a state needs of its compute buffer (the graph context's ~1.6 MB
# included), in bytes, as a + b * n_state + c * n_mels: least-squares fits on the
# figures whisper.cpp 1.8.5 logged for its four buffers on the seven architectures
# below (largest error 5 kB; the log rounds to 10 kB). They do not depend on the
# weight type. Since vendor/patches/0016 the four graphs share one buffer, the
# largest need, and the encoder's input and output lie beside it (``encoder_io``).
# The encoder's is refitted on patch 0021's figures (five architectures, within 5 kB):
# its feed-forward network runs in four blocks of rows; since patch 0033 it holds a layer's
# f16 K and V too (small, medium, large-v3 measured, within 5 kB). The conv graph's is its tensors
# since patch 0027 (bias and GELU in place): the context, the mel and conv1's im2col
# (30 kB per mel band), conv1's output and conv2's im2col (21 kB per channel); within
# 10 kB of tiny's and base's, where it is the largest graph (small and up: the encoder).
# The decoder's need holds the logits of the rows a step
# reads (vendor/patches/0008; 448 x n_vocab floats before it) and the self-attention of
# n_text_ctx tokens, which grows with the heads too: the fit is within 0.6 MB, and the
# measured figure of each known shape (MEASURED_STATE) is used where there is one.
_COMPUTE_FIT: Dict[str, Tuple[float, float, float]] = {
    "conv": (1_586_000, 21_000.0, 30_000.0),  # in place (0027)
    "encode": (1_590_183, 25_644.0, 0.0),  # FFN in row blocks (0021), K and V in the graph (0033)
    "cross": (1_584_752, 6_002.3, 17.7),
    "decode": (1_789_548, 15_389.3, -19_202.0),
}

#: Per-state buffers whisper.cpp 1.8.5 logged on this machine (one compute buffer per graph then) (CPU backend, flash
#: attention on, as wn.Model uses), bytes: tiny.en with real weights, the others
#: with synthetic q4_0 weights (tiny.en gave the same figures for both). "encode" is
#: the encoder graph's need after patch 0021, logged by a build that reserved it alone, with
#: patch 0033's K and V (small and up measured; tiny and base by the fit, below their conv);
#: "conv" the conv graph's after patch 0027 (tiny, base; the fit's for the others).
MEASURED_STATE: Dict[str, Dict[str, int]] = {
    arch: dict(zip(("kv_self", "kv_cross", "conv", "encode", "cross", "decode"), row))
    for arch, row in {
        "tiny": (3_150_000, 9_440_000, 12_050_000, 11_440_000, 3_890_000, 6_410_000),
        "base": (6_290_000, 18_870_000, 14_740_000, 14_720_000, 4_660_000, 7_560_000),
        "small": (18_870_000, 56_620_000, 20_110_000, 21_280_000, 6_200_000, 12_600_000),
        "medium": (50_330_000, 150_990_000, 25_490_000, 27_850_000, 7_730_000, 15_810_000),
        "large-v3": (83_890_000, 251_660_000, 32_310_000, 34_410_000, 9_270_000, 19_030_000),
        "large-v3-turbo": (10_490_000, 31_460_000, 32_310_000, 34_410_000, 9_270_000, 19_030_000),
    }.items()
}
#: The decoder compute buffer of each measured shape, (n_text_state, n_text_head) -> bytes.
_DECODE_MEASURED: Dict[Tuple[int, int], int] = {
    (ARCHS[arch].n_text_state, ARCHS[arch].n_text_head): row["decode"] for arch, row in MEASURED_STATE.items()}


def kv_self_cells(n_text_ctx: int, n_decoders: int = 1) -> int:
    """Cells of whisper.cpp's self-attention cache for ``n_decoders`` decoders (beams or
    best-of candidates): a window's prompt plus one cell per decoder per step, padded to
    256 (vendor/patches/0010); one decoder keeps n_text_ctx padded."""
    pad = lambda n: (n + 255) // 256 * 256  # noqa: E731 - GGML_PAD(n, 256)
    return max(pad(n_text_ctx), pad(n_text_ctx // 2 + 8 + n_decoders * (n_text_ctx // 2 - 4)))


@dataclass(frozen=True)
class MemoryEstimate:
    """Native bytes a model needs: weights once, plus ``state`` per concurrent transcription."""

    weights: int
    kv_self: int
    kv_cross: int
    compute: Dict[str, int]  # each graph's need; the state holds the largest (patch 0016)
    encoder_io: int
    beam_size: int = 1
    n_states: int = 1  # concurrent transcriptions
    n_text_ctx: int = 448

    @property
    def kv_self_beams(self) -> int:
        """The self-attention cache grown to a window's worst case for ``beam_size`` decoders."""
        return self.kv_self * kv_self_cells(self.n_text_ctx, self.beam_size) // kv_self_cells(self.n_text_ctx)

    @property
    def state(self) -> int:
        """One state; beam search grows the self-attention cache to a window's worst case
        for its beams (``kv_self_cells``)."""
        return self.kv_self_beams + self.kv_cross + self.encoder_io + max(self.compute.values())

    @property
    def peak_state(self) -> int:
        """What one state holds resident at its peak where pages go back to the kernel between
        graphs (Linux, CPU: vendor/patches/0027, 0028, 0030, 0031): the largest of its phases,
        not the sum of its buffers. The conv graph with the encoder's input/output; the encoder
        graph with them (its K and V in its graph: patch 0033); the cross graph with its output, the cross cache;
        the decoder with the cross cache and the self cells of the window's worst case for its
        beams."""
        encode = max(self.compute["conv"], self.compute["encode"]) + self.encoder_io
        cross = self.compute["cross"] + self.kv_cross + self.encoder_io
        decode = self.compute["decode"] + self.kv_cross + self.kv_self_beams
        return max(encode, cross, decode)

    @property
    def total(self) -> int:
        """Weights plus ``n_states`` states (``int(estimate)`` is the same)."""
        return self.weights + self.n_states * self.state

    @property
    def peak(self) -> int:
        """Weights plus ``n_states`` states at their resident peak (:attr:`peak_state`)."""
        return self.weights + self.n_states * self.peak_state

    def __int__(self) -> int:
        return self.total

    def as_dict(self) -> Dict[str, object]:
        d = dataclasses.asdict(self)
        d.update(state=self.state, total=self.total, peak_state=self.peak_state, peak=self.peak)
        return d


def _kv_bytes(n_elements: int, kv_type: Tuple[str, str]) -> int:
    """A K and a V tensor of ``n_elements`` each, of ggml types ``kv_type`` (f16 or q8_0:
    vendor/patches/0014), as ggml allocates them."""
    return sum(ggml_type(t).nbytes([n_elements]) for t in kv_type)


def estimate_memory(model: "str | HParams", beam_size: int = 1, *, n_states: int = 1,
                    weight_bytes: Optional[int] = None,
                    kv_type: Tuple[str, str] = ("f16", "f16")) -> MemoryEstimate:
    """Native bytes whisper.cpp allocates for ``model`` (a registry name or the
    hyperparameters of a file) running ``n_states`` transcriptions at once, each
    with ``beam_size`` beams, its attention caches' K and V of ``kv_type`` (what
    ``Model(kv_type=...)`` resolved to): weights exact, buffers from the fits above."""
    hp = get(model).hparams if isinstance(model, str) else model
    weights = weight_bytes if weight_bytes is not None else sum(s.nbytes for s in expected_tensors(hp))
    pad = lambda n: (n + 255) // 256 * 256  # noqa: E731 - GGML_PAD(n, 256)
    kv_self = _kv_bytes(hp.n_text_state * hp.n_text_layer * pad(hp.n_text_ctx), kv_type)
    kv_cross = _kv_bytes(hp.n_text_state * hp.n_text_layer * pad(hp.n_audio_ctx), kv_type)
    compute = {k: int(a + b * hp.n_audio_state + c * hp.n_mels) for k, (a, b, c) in _COMPUTE_FIT.items()}
    compute["decode"] = _DECODE_MEASURED.get((hp.n_text_state, hp.n_text_head), compute["decode"])
    # f32, the convolutions' and the encoder's output, and the f16 zeros that pad the encoder's
    # K and V to a multiple of 256 positions (patch 0033)
    encoder_io = 4 * hp.n_audio_state * hp.n_audio_ctx + 2 * hp.n_audio_state * 255
    return MemoryEstimate(weights, kv_self, kv_cross, compute, encoder_io, beam_size, n_states,
                          hp.n_text_ctx)


@dataclass(frozen=True)
class ModelSpec:
    """One model the store can install by name."""

    name: str
    arch: str
    quant: Optional[str]  # None for the F16 file
    hparams: HParams
    sha1: Optional[str]  # of the official file, where whisper.cpp publishes one
    published: bool  # downloadable from whisper.cpp's model repository

    @property
    def file_name(self) -> str:
        return f"ggml-{self.name}.bin"

    @property
    def wtype(self) -> str:
        hp = self.hparams
        return hp.type_name

    @property
    def weight_bytes(self) -> int:
        return sum(s.nbytes for s in expected_tensors(self.hparams))

    @property
    def approx_file_size(self) -> int:
        n_tensors = len(expected_tensors(self.hparams))
        return self.weight_bytes + _HEADER_BYTES + n_tensors * _TENSOR_HEADER_BYTES

    def memory(self, beam_size: int = 1, n_states: int = 1) -> MemoryEstimate:
        return estimate_memory(self.hparams, beam_size, n_states=n_states, weight_bytes=self.weight_bytes)

    @property
    def alignment_heads(self) -> str:
        """whisper.cpp's alignment-head preset for word timestamps (the architecture's)."""
        return ALIGNMENT_HEADS[self.arch]

    @property
    def base_name(self) -> Optional[str]:
        """The F16 model a quantized one is made from."""
        return self.arch if self.quant else None

    def as_dict(self) -> Dict[str, object]:
        return {"name": self.name, "arch": self.arch, "type": self.wtype, "file": self.file_name,
                "size": self.approx_file_size, "sha1": self.sha1, "published": self.published,
                "hparams": dataclasses.asdict(self.hparams), "memory": self.memory().as_dict(),
                "measured_state": MEASURED_STATE.get(self.arch.replace(".en", ""))}


def ftype_of(quant: str) -> int:
    """The header ftype field of a quantized file: ggml_ftype + 1000 x quantization version."""
    return QUANT_TYPES[quant] + GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR


def parse_name(name: str) -> Tuple[str, Optional[str]]:
    """``"medium.en-q5_0"`` -> ``("medium.en", "q5_0")``; ModelError for an unknown name."""
    arch, quant = name, None
    head, sep, tail = name.rpartition("-")
    if sep and tail.lower() in QUANT_TYPES:
        arch, quant = head, tail.lower()
    if arch not in ARCHS:
        raise ModelError(f"unknown model {name!r}: give a path to a ggml file, or one of {', '.join(ARCHS)} "
                         f"(optionally with -{'/-'.join(QUANT_TYPES)})")
    return arch, quant


def get(name: str) -> ModelSpec:
    """The spec of a model name; ModelError if unknown or if the quantization cannot apply."""
    arch, quant = parse_name(name)
    hp = ARCHS[arch]
    canonical = arch if quant is None else f"{arch}-{quant}"
    if quant is not None:
        hp = dataclasses.replace(hp, ftype=ftype_of(quant))
        try:
            hp.check()
        except ModelError as exc:
            raise ModelError(f"model {name!r}: {exc}") from None
    return ModelSpec(canonical, arch, quant, hp, PUBLISHED_SHA1.get(canonical),
                     quant is None or canonical in PUBLISHED_QUANTIZED)


def names(include_quantized: bool = True) -> List[str]:
    """Every name :func:`get` accepts."""
    out = []
    for arch in ARCHS:
        out.append(arch)
        if include_quantized:
            for q in QUANT_TYPES:
                try:
                    out.append(get(f"{arch}-{q}").name)
                except ModelError:
                    pass  # e.g. k-quants on tiny
    return out
