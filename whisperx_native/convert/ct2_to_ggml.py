"""Convert a CTranslate2 (faster-whisper) Whisper model to a whisper.cpp file.

The CTranslate2 WhisperSpec names and fuses weights differently from OpenAI's
checkpoint, which is what whisper.cpp's tensor names follow:

=====================================================  =========================================
CTranslate2                                            whisper.cpp
=====================================================  =========================================
encoder/conv{1,2}/{weight,bias}                        encoder.conv{1,2}.{weight,bias}
encoder/position_encodings/encodings                   encoder.positional_embedding
{enc,dec}oder/layer_N/self_attention/linear_0 (q|k|v)  ...blocks.N.attn.{query,key,value}
{enc,dec}oder/layer_N/self_attention/linear_1          ...blocks.N.attn.out
{enc,dec}oder/layer_N/self_attention/layer_norm        ...blocks.N.attn_ln
decoder/layer_N/attention/linear_0                     decoder.blocks.N.cross_attn.query
decoder/layer_N/attention/linear_1 (k|v)               decoder.blocks.N.cross_attn.{key,value}
decoder/layer_N/attention/linear_2                     decoder.blocks.N.cross_attn.out
decoder/layer_N/attention/layer_norm                   decoder.blocks.N.cross_attn_ln
{enc,dec}oder/layer_N/ffn/linear_{0,1}                 ...blocks.N.mlp.{0,2}
{enc,dec}oder/layer_N/ffn/layer_norm                   ...blocks.N.mlp_ln
encoder/layer_norm, decoder/layer_norm                 encoder.ln_post, decoder.ln
decoder/embeddings/weight                              decoder.token_embedding.weight
decoder/position_encodings/encodings                   decoder.positional_embedding
=====================================================  =========================================

Layer norms are ``gamma``/``beta`` in CTranslate2 and ``weight``/``bias`` here.
The output is what convert-pt-to-ggml.py writes: ftype 1, 2-D weights and conv
kernels F16, biases, norms and positional embeddings F32.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._fsutil import atomic_write
from ..errors import ModelError, OutputExistsError
from ..models.ggml_file import F16, GGMLWriter, HParams, TensorSpec, expected_tensors, validate
from .ct2 import CT2Model
from .mel import mel_filters
from .vocab import ggml_vocab, load_ct2_vocabulary

__all__ = ["convert_ct2", "ct2_hparams", "ggml_tensors"]

FTYPE_F16 = 1
_HEAD_DIM = 64


@dataclass(frozen=True)
class _Source:
    """Where a ggml tensor comes from: ``part`` of ``parts`` equal row blocks of ``name``."""

    name: str
    part: int = 0
    parts: int = 1


def _sources(hp: HParams) -> dict[str, _Source]:
    src: dict[str, _Source] = {
        "encoder.positional_embedding": _Source("encoder/position_encodings/encodings"),
        "encoder.conv1.weight": _Source("encoder/conv1/weight"),
        "encoder.conv1.bias": _Source("encoder/conv1/bias"),
        "encoder.conv2.weight": _Source("encoder/conv2/weight"),
        "encoder.conv2.bias": _Source("encoder/conv2/bias"),
        "decoder.positional_embedding": _Source("decoder/position_encodings/encodings"),
        "decoder.token_embedding.weight": _Source("decoder/embeddings/weight"),
    }

    def norm(dst: str, ct2: str) -> None:
        src[f"{dst}.weight"] = _Source(f"{ct2}/gamma")
        src[f"{dst}.bias"] = _Source(f"{ct2}/beta")

    def linear(dst: str, ct2: str, part: int = 0, parts: int = 1, bias: bool = True) -> None:
        src[f"{dst}.weight"] = _Source(f"{ct2}/weight", part, parts)
        if bias:
            src[f"{dst}.bias"] = _Source(f"{ct2}/bias", part, parts)

    def self_attention(dst: str, ct2: str) -> None:
        # Fused q|k|v. CTranslate2 stores a key bias (zeros for Whisper), which
        # whisper.cpp has no slot for; dropping it is exact anyway: q.(k + b)
        # shifts every score of a query equally, and softmax ignores that.
        linear(f"{dst}.attn.query", f"{ct2}/linear_0", 0, 3)
        linear(f"{dst}.attn.key", f"{ct2}/linear_0", 1, 3, bias=False)
        linear(f"{dst}.attn.value", f"{ct2}/linear_0", 2, 3)
        linear(f"{dst}.attn.out", f"{ct2}/linear_1")
        norm(f"{dst}.attn_ln", f"{ct2}/layer_norm")

    def ffn(dst: str, ct2: str) -> None:
        linear(f"{dst}.mlp.0", f"{ct2}/linear_0")
        linear(f"{dst}.mlp.2", f"{ct2}/linear_1")
        norm(f"{dst}.mlp_ln", f"{ct2}/layer_norm")

    for i in range(hp.n_audio_layer):
        self_attention(f"encoder.blocks.{i}", f"encoder/layer_{i}/self_attention")
        ffn(f"encoder.blocks.{i}", f"encoder/layer_{i}/ffn")
    norm("encoder.ln_post", "encoder/layer_norm")

    for i in range(hp.n_text_layer):
        dst, ct2 = f"decoder.blocks.{i}", f"decoder/layer_{i}"
        self_attention(dst, f"{ct2}/self_attention")
        linear(f"{dst}.cross_attn.query", f"{ct2}/attention/linear_0")
        linear(f"{dst}.cross_attn.key", f"{ct2}/attention/linear_1", 0, 2, bias=False)  # fused k|v
        linear(f"{dst}.cross_attn.value", f"{ct2}/attention/linear_1", 1, 2)
        linear(f"{dst}.cross_attn.out", f"{ct2}/attention/linear_2")
        norm(f"{dst}.cross_attn_ln", f"{ct2}/attention/layer_norm")
        ffn(dst, f"{ct2}/ffn")
    norm("decoder.ln", "decoder/layer_norm")
    return src


def _layer_count(model: CT2Model, prefix: str) -> int:
    pattern = re.compile(rf"^{prefix}/layer_(\d+)/")
    indices = {int(m.group(1)) for name in model.variables if (m := pattern.match(name))}
    if indices != set(range(len(indices))):
        raise ModelError(f"CTranslate2 model '{model.path}': {prefix} layers {sorted(indices)} are not 0..N-1")
    return len(indices)


def ct2_hparams(model: CT2Model) -> HParams:
    """The whisper.cpp hyperparameters of a CTranslate2 Whisper model (ftype F16)."""
    if model.spec_name != "WhisperSpec":
        raise ModelError(f"'{model.path}' is a CTranslate2 {model.spec_name or 'legacy'} model, not Whisper")

    def shape(name: str, rank: int) -> tuple[int, ...]:
        s = model.variable(name).shape
        if len(s) != rank:
            raise ModelError(f"CTranslate2 variable '{name}' has shape {s}, expected rank {rank}")
        return s

    def heads(prefix: str, n_state: int) -> int:
        name = f"{prefix}/num_heads"
        # Whisper heads are always 64 wide; older specs may not store the count.
        return int(model.scalar(name)) if name in model else n_state // _HEAD_DIM

    n_vocab, n_text_state = shape("decoder/embeddings/weight", 2)
    n_audio_ctx, n_audio_state = shape("encoder/position_encodings/encodings", 2)
    n_text_ctx, _ = shape("decoder/position_encodings/encodings", 2)
    _, n_mels, _ = shape("encoder/conv1/weight", 3)
    hp = HParams(
        n_vocab=n_vocab,
        n_audio_ctx=n_audio_ctx,
        n_audio_state=n_audio_state,
        n_audio_head=heads("encoder", n_audio_state),
        n_audio_layer=_layer_count(model, "encoder"),
        n_text_ctx=n_text_ctx,
        n_text_state=n_text_state,
        n_text_head=heads("decoder", n_text_state),
        n_text_layer=_layer_count(model, "decoder"),
        n_mels=n_mels,
        ftype=FTYPE_F16,
    )
    try:
        hp.check()
    except ModelError as e:
        raise ModelError(f"CTranslate2 model '{model.path}' is not a Whisper model whisper.cpp can run: {e}") from None
    return hp


def _check_fully_used(model: CT2Model, sources: dict[str, _Source]) -> None:
    """Refuse models with weights this mapping would silently drop (e.g. an
    untied output projection or low-rank "lite" Whisper layers)."""
    used = {model.variable(s.name).name for s in sources.values()}
    for name, var in model.variables.items():
        if var.is_scalar or name in used or (name.endswith("_scale") and name[: -len("_scale")] in used):
            continue
        raise ModelError(f"CTranslate2 model '{model.path}': whisper.cpp has no use for '{name}' {var.shape}")


def ggml_tensors(model: CT2Model, hp: HParams) -> Iterator[tuple[TensorSpec, np.ndarray]]:
    """Yield each ggml tensor with its data, one at a time, in file order.

    Arrays are views of the memory-mapped CTranslate2 file where the types
    already agree, so at most one converted tensor is in memory at a time.
    """
    sources = _sources(hp)
    _check_fully_used(model, sources)
    for spec in expected_tensors(hp):
        src = sources[spec.name]
        var = model.variable(src.name)
        rows = spec.shape[0]
        want = (rows * src.parts, *spec.shape[1:])
        if spec.shape[1:] == (1,):  # conv biases: CTranslate2 (n,), ggml (n, 1)
            want = want[:1]
        if var.shape != want:
            raise ModelError(f"CTranslate2 variable '{src.name}' has shape {var.shape}, expected {want}")
        data = model.tensor(src.name, slice(src.part * rows, (src.part + 1) * rows) if src.parts > 1 else None)
        data = data.reshape(spec.shape)
        target = np.float16 if spec.type is F16 else np.float32
        yield spec, data.astype(target, copy=False)


def _model_dir(src: str | os.PathLike[str]) -> Path:
    src = Path(src)
    if src.is_file() and src.name == "model.bin":
        return src.parent
    if not src.is_dir():
        raise ModelError(f"CTranslate2 model directory '{src}' does not exist")
    if not (src / "model.bin").is_file():
        raise ModelError(f"'{src}' has no model.bin: not a CTranslate2 model directory")
    return src


def convert_ct2(src_dir: str | os.PathLike[str], dst_path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Convert the CTranslate2 Whisper model in ``src_dir`` to a whisper.cpp
    file at ``dst_path`` (F16 weights), atomically, and return ``dst_path``.

    The output is written to a temporary sibling, validated, and renamed into
    place; on any failure nothing is left behind. Raises ModelError for a bad
    or unsupported source, OutputExistsError (a FileExistsError) if ``dst_path`` exists and
    ``overwrite`` is false.
    """
    src = _model_dir(src_dir)
    dst = Path(dst_path)
    if not overwrite and dst.exists():  # fail before the expensive part
        raise OutputExistsError(f"'{dst}' already exists")
    with CT2Model(src / "model.bin") as model:
        hp = ct2_hparams(model)
        tokens = ggml_vocab(load_ct2_vocabulary(src), hp.n_vocab)
        with atomic_write(dst, overwrite=overwrite, check=validate) as f:
            writer = GGMLWriter(f, hp)
            writer.write_header(mel_filters(hp.n_mels), tokens)
            for spec, data in ggml_tensors(model, hp):
                writer.write_tensor(spec.name, data)
            writer.finish()
    return dst
