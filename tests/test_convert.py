"""CTranslate2 -> whisper.cpp conversion: mel filters, vocabulary, CT2 parsing,
tensor mapping, atomic output -- on real faster-whisper models."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from _ct2 import copy_model_dir, quantize_int8, quantize_int16, read_all, to_bfloat16_bits, write_ct2
from _util import REPO

from whisperx_native._fsutil import atomic_write
from whisperx_native.convert import convert_ct2
from whisperx_native.convert.__main__ import main as convert_main
from whisperx_native.convert.ct2 import CT2Model
from whisperx_native.convert.ct2_to_ggml import ct2_hparams
from whisperx_native.convert.mel import hz_to_mel, mel_filters, mel_to_hz
from whisperx_native.convert.vocab import (
    byte_encoder,
    bytes_to_token,
    ggml_vocab,
    load_ct2_vocabulary,
    token_to_bytes,
)
from whisperx_native.errors import ModelError
from whisperx_native.models.ggml_file import HParams, ModelInfo, read_vocab, validate, vocab_offset

DATA = Path(__file__).parent / "data"
TINY_EN = HParams(51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1)
BASE = HParams(51865, 1500, 512, 8, 6, 448, 512, 8, 6, 80, 1)


def ggml_array(info: ModelInfo, name: str) -> np.ndarray:
    t = next(t for t in info.tensors if t.name == name)
    dtype = "<f2" if t.type.name == "f16" else "<f4"
    return np.memmap(info.path, dtype=np.uint8, mode="r")[t.offset : t.offset + t.nbytes].view(dtype).reshape(t.shape)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --------------------------------------------------------------------------
# mel filterbank


@pytest.mark.parametrize("n_mels", [80, 128])
def test_mel_filters_equal_librosa(n_mels: int) -> None:
    # reference: librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels), see data/README.md
    expected = np.load(DATA / "librosa_mel_filters.npz")[f"mel_{n_mels}"]
    got = mel_filters(n_mels)
    assert got.dtype == np.float32 and got.shape == (n_mels, 201)
    assert np.array_equal(got, expected)  # exact, not approximately
    # bit-identical too, except that zeros are +0.0 like Whisper's mel_filters.npz
    same_bits = got.view(np.uint32) == expected.view(np.uint32)
    assert (same_bits | (got == 0)).all() and not np.signbit(got).any()


def test_mel_scale() -> None:
    assert hz_to_mel(1000.0) == pytest.approx(15.0)
    hz = np.array([0.0, 200.0, 999.0, 1000.0, 4000.0, 8000.0])
    assert np.allclose(mel_to_hz(hz_to_mel(hz)), hz)
    with pytest.raises(ValueError):
        mel_filters(0)


# --------------------------------------------------------------------------
# vocabulary


def test_byte_alphabet() -> None:
    enc = byte_encoder()
    assert len(enc) == 256 and len(set(enc.values())) == 256
    assert enc[ord("a")] == "a" and enc[ord(" ")] == "Ġ" and enc[ord("\n")] == "Ċ"
    for b in range(256):
        assert token_to_bytes(bytes_to_token(bytes([b]))) == bytes([b])


def test_token_decoding() -> None:
    assert token_to_bytes("Ġthe") == b" the"
    assert token_to_bytes("Ã©") == "é".encode()
    assert token_to_bytes("") == b""
    assert token_to_bytes("<|endoftext|>") == b"<|endoftext|>"
    with pytest.raises(ModelError, match="outside GPT-2's byte alphabet"):
        token_to_bytes("€")


def test_tiny_en_vocabulary(tiny_en_ct2_dir: Path) -> None:
    tokens = load_ct2_vocabulary(tiny_en_ct2_dir)
    assert len(tokens) == 51864 and tokens[50257] == "<|startoftranscript|>"
    vocab = ggml_vocab(tokens, 51864)
    assert len(vocab) == 50257 and vocab[262] == b" the" and vocab[-1] == b"<|endoftext|>"
    for token, raw in zip(tokens, vocab):
        assert bytes_to_token(raw) == token
    with pytest.raises(ModelError, match="embeddings"):
        ggml_vocab(tokens, 51865)
    with pytest.raises(ModelError, match="special token"):
        ggml_vocab(["<|endoftext|>", *tokens[1:]], 51864)


def test_vocabulary_json_and_txt_agree(tiny_en_ct2_dir: Path, tmp_path: Path) -> None:
    tokens = load_ct2_vocabulary(tiny_en_ct2_dir)
    (tmp_path / "vocabulary.json").write_text(json.dumps(tokens), encoding="utf-8")
    assert load_ct2_vocabulary(tmp_path) == tokens
    with pytest.raises(ModelError, match="no vocabulary"):
        load_ct2_vocabulary(tmp_path / "missing")


def test_header_matches_whisper_cpp_reference(tiny_en_ggml: Path) -> None:
    """Our magic, hparams and mel filters are byte-identical to whisper.cpp's
    own tiny.en file; its vocabulary differs only where upstream's test file
    went through a lossy UTF-8 decode (U+FFFD for partial UTF-8 tokens)."""
    reference = REPO / "vendor" / "whisper.cpp" / "models" / "for-tests-ggml-tiny.en.bin"
    assert reference.exists(), f"{reference} missing: the build fetches vendor/whisper.cpp"
    ref = reference.read_bytes()
    n = vocab_offset(80) + 4  # magic, hparams, mel, token count
    assert tiny_en_ggml.read_bytes()[:n] == ref[:n]
    ours = read_vocab(tiny_en_ggml)
    theirs, pos = [], n
    for _ in range(len(ours)):
        length = int.from_bytes(ref[pos : pos + 4], "little")
        theirs.append(ref[pos + 4 : pos + 4 + length])
        pos += 4 + length
    assert pos == len(ref)
    assert [t.decode("utf-8", errors="replace").encode() for t in ours] == theirs
    assert sum(a != b for a, b in zip(ours, theirs)) == 344  # tokens that are not whole UTF-8


# --------------------------------------------------------------------------
# CTranslate2 model.bin


def test_ct2_reader(tiny_en_ct2_dir: Path) -> None:
    with CT2Model(tiny_en_ct2_dir / "model.bin") as m:
        assert (m.binary_version, m.spec_name, m.spec_revision) == (6, "WhisperSpec", 3)
        assert len(m.variables) == 148
        assert m.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
        assert m.variable("decoder/projection/weight").name == "decoder/embeddings/weight"
        assert m.scalar("encoder/num_heads") == 6
        qkv = m.tensor("encoder/layer_0/self_attention/linear_0/weight")
        assert qkv.dtype == np.float16 and qkv.shape == (1152, 384)
        assert not qkv.flags.owndata  # a view of the mapped file, not a copy
        assert ct2_hparams(m) == TINY_EN


@pytest.mark.parametrize("cut", [0, 3, 10, 30, 1000, 10**6, -1])
def test_ct2_truncated(tiny_en_ct2_dir: Path, tmp_path: Path, cut: int) -> None:
    data = (tiny_en_ct2_dir / "model.bin").read_bytes()
    path = tmp_path / "model.bin"
    path.write_bytes(data[:cut])
    with pytest.raises(ModelError, match="empty" if cut == 0 else "truncated"):
        CT2Model(path)


def test_ct2_bad_files(tiny_en_ct2_dir: Path, tmp_path: Path) -> None:
    data = (tiny_en_ct2_dir / "model.bin").read_bytes()
    path = tmp_path / "model.bin"
    for bad, fragment in [
        ((99).to_bytes(4, "little") + data[4:], "binary version 99"),
        (data + b"\0", "unexpected bytes"),
        (os.urandom(4096), "CTranslate2"),
    ]:
        path.write_bytes(bad)
        with pytest.raises(ModelError, match=fragment):
            CT2Model(path)
    with pytest.raises(ModelError, match="does not exist"):
        CT2Model(tmp_path / "missing.bin")
    with pytest.raises(ModelError, match="directory"):
        CT2Model(tmp_path)


# --------------------------------------------------------------------------
# the converted model


def test_converted_tiny_en(tiny_en_ggml: Path, tiny_en_ct2_dir: Path) -> None:
    info = validate(tiny_en_ggml)
    assert info.hparams == TINY_EN and info.n_tokens == 50257 and len(info.tensors) == 167
    assert info.file_size == 77_704_715
    with CT2Model(tiny_en_ct2_dir / "model.bin") as ct2:
        n = 384
        qkv = ct2.tensor("decoder/layer_1/self_attention/linear_0/weight")
        assert np.array_equal(ggml_array(info, "decoder.blocks.1.attn.query.weight"), qkv[:n])
        assert np.array_equal(ggml_array(info, "decoder.blocks.1.attn.key.weight"), qkv[n : 2 * n])
        assert np.array_equal(ggml_array(info, "decoder.blocks.1.attn.value.weight"), qkv[2 * n :])
        qkv_bias = ct2.tensor("decoder/layer_1/self_attention/linear_0/bias")
        assert np.array_equal(ggml_array(info, "decoder.blocks.1.attn.query.bias"), qkv_bias[:n])
        assert np.array_equal(ggml_array(info, "decoder.blocks.1.attn.value.bias"), qkv_bias[2 * n :])
        assert not qkv_bias[n : 2 * n].any()  # the key bias that whisper.cpp has no slot for
        kv = ct2.tensor("decoder/layer_2/attention/linear_1/weight")
        assert np.array_equal(ggml_array(info, "decoder.blocks.2.cross_attn.key.weight"), kv[:n])
        assert np.array_equal(ggml_array(info, "decoder.blocks.2.cross_attn.value.weight"), kv[n:])
        for ggml_name, ct2_name in [
            ("decoder.blocks.2.cross_attn.query.weight", "decoder/layer_2/attention/linear_0/weight"),
            ("encoder.blocks.3.mlp.2.weight", "encoder/layer_3/ffn/linear_1/weight"),
            ("encoder.blocks.0.mlp_ln.weight", "encoder/layer_0/ffn/layer_norm/gamma"),
            ("decoder.ln.bias", "decoder/layer_norm/beta"),
            ("encoder.conv2.weight", "encoder/conv2/weight"),
        ]:
            assert np.array_equal(ggml_array(info, ggml_name), ct2.tensor(ct2_name)), ggml_name
        assert np.array_equal(ggml_array(info, "encoder.conv1.bias")[:, 0], ct2.tensor("encoder/conv1/bias"))
        pos = ggml_array(info, "encoder.positional_embedding")
        assert pos.dtype == np.float32 and np.array_equal(pos, ct2.tensor("encoder/position_encodings/encodings"))
        embedding = ggml_array(info, "decoder.token_embedding.weight")
        assert embedding.tobytes() == ct2.raw("decoder/embeddings/weight").tobytes()


def test_conversion_is_deterministic(tiny_en_ct2_dir: Path, tiny_en_ggml: Path, tmp_path: Path) -> None:
    again = convert_ct2(tiny_en_ct2_dir, tmp_path / "again.bin")
    assert again == tmp_path / "again.bin"
    assert sha256(again) == sha256(tiny_en_ggml)


def test_base_multilingual(base_ggml: Path) -> None:
    info = validate(base_ggml)
    assert info.hparams == BASE and info.is_multilingual and info.model_type == "base"
    vocab = read_vocab(base_ggml)
    assert len(vocab) == 50257 and vocab[-1] == b""  # multilingual id 50256 is an empty token


# --------------------------------------------------------------------------
# other CTranslate2 encodings, built from the real tiny.en


def test_quantized_and_mixed_dtype_source(tiny_en_ct2_dir: Path, tiny_en_ggml: Path, tmp_path: Path) -> None:
    """int8 (per-row scale), int16 (one scale), bfloat16 and float32 variables,
    and an alias, as CTranslate2 writes them, all convert."""
    src = copy_model_dir(tiny_en_ct2_dir, tmp_path / "mixed")
    aliased, target = "encoder/layer_1/ffn/layer_norm/beta", "encoder/layer_0/ffn/layer_norm/beta"
    with CT2Model(tiny_en_ct2_dir / "model.bin") as ct2:
        out = []
        for name, dtype, array in read_all(ct2):
            if name == aliased:
                continue
            if name.startswith("encoder/layer_") and name.endswith("weight") and array.ndim == 2:
                q, scale = quantize_int8(array)
                out += [(name, "int8", q), (f"{name}_scale", "float32", scale)]
            elif name.startswith("decoder/layer_0/") and name.endswith("weight") and array.ndim == 2:
                q, scale = quantize_int16(array)
                out += [(name, "int16", q), (f"{name}_scale", "float32", scale)]
            elif name.endswith("bias") and array.ndim == 1:
                out.append((name, "bfloat16", to_bfloat16_bits(array)))
            elif name.endswith("gamma"):
                out.append((name, "float32", array.astype(np.float32)))
            else:
                out.append((name, dtype, array))
        write_ct2(src / "model.bin", out, {**ct2.aliases, aliased: target})

    info = validate(convert_ct2(src, tmp_path / "mixed.bin"))
    ref = validate(tiny_en_ggml)
    # int16 uses one scale per CTranslate2 matrix (q|k|v fused): bound its step by the layer's largest weight
    layer0 = [t.name for t in ref.tensors if t.name.startswith("decoder.blocks.0.")]
    int16_step = max(np.abs(ggml_array(ref, name)).max() for name in layer0) / 2**10
    for spec in info.tensors:
        if spec.name == "encoder.blocks.1.mlp_ln.bias":  # the alias, checked below
            continue
        got = ggml_array(info, spec.name).astype(np.float32)
        want = ggml_array(ref, spec.name).astype(np.float32)
        if spec.name.startswith("encoder.blocks.") and spec.name.endswith("weight") and got.ndim == 2:
            step = np.abs(want).max(axis=1, keepdims=True) / 127  # int8 quantization step per row
            assert np.all(np.abs(got - want) <= 0.5 * step + 1e-3 * np.abs(want) + 1e-6), spec.name
        elif spec.name.startswith("decoder.blocks.0.") and spec.name.endswith("weight") and got.ndim == 2:
            assert np.all(np.abs(got - want) <= 0.5 * int16_step + 1e-3 * np.abs(want) + 1e-6), spec.name
        elif spec.name.endswith(".bias"):
            assert np.allclose(got, want, rtol=2**-7 + 2**-10, atol=1e-7), spec.name  # bfloat16 truncation
        else:
            assert np.array_equal(got, want), spec.name
    alias, target = ggml_array(info, "encoder.blocks.1.mlp_ln.bias"), ggml_array(info, "encoder.blocks.0.mlp_ln.bias")
    assert np.array_equal(alias, target)


def test_unsupported_sources(tiny_en_ct2_dir: Path, tmp_path: Path) -> None:
    with CT2Model(tiny_en_ct2_dir / "model.bin") as ct2:
        variables, aliases = read_all(ct2), ct2.aliases

    def source(name: str, variables=variables, aliases=aliases, spec="WhisperSpec") -> Path:
        d = copy_model_dir(tiny_en_ct2_dir, tmp_path / name)
        write_ct2(d / "model.bin", variables, aliases, spec=spec)
        return d

    # an untied output projection would be silently dropped: refuse
    projection = ("decoder/projection/weight", "float16", np.zeros((51864, 384), np.float16))
    untied = source("untied", [*variables, projection], {})
    with pytest.raises(ModelError, match="decoder/projection/weight"):
        convert_ct2(untied, tmp_path / "out.bin")
    with pytest.raises(ModelError, match="not Whisper"):
        convert_ct2(source("t5", spec="T5Spec"), tmp_path / "out.bin")
    no_layer_norm = [v for v in variables if v[0] != "decoder/layer_norm/gamma"]
    with pytest.raises(ModelError, match="decoder/layer_norm/gamma"):
        convert_ct2(source("incomplete", no_layer_norm), tmp_path / "out.bin")
    with pytest.raises(ModelError, match="does not exist"):
        convert_ct2(tmp_path / "nowhere", tmp_path / "out.bin")
    with pytest.raises(ModelError, match="no model\\.bin"):
        convert_ct2(tmp_path, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()


# --------------------------------------------------------------------------
# atomic output


def test_failed_conversions_leave_nothing(tiny_en_ct2_dir: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    # a truncated model.bin is refused before anything is written
    truncated = copy_model_dir(tiny_en_ct2_dir, tmp_path / "truncated")
    data = (tiny_en_ct2_dir / "model.bin").read_bytes()
    (truncated / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated"):
        convert_ct2(truncated, out_dir / "model.bin")
    assert listing(out_dir) == []

    # a bad variable near the end fails after most of the file has been written
    with CT2Model(tiny_en_ct2_dir / "model.bin") as ct2:
        variables = [(n, d, a.T if n == "decoder/layer_3/ffn/linear_1/weight" else a) for n, d, a in read_all(ct2)]
        late = copy_model_dir(tiny_en_ct2_dir, tmp_path / "late")
        write_ct2(late / "model.bin", variables, ct2.aliases)
    with pytest.raises(ModelError, match="decoder/layer_3/ffn/linear_1/weight"):
        convert_ct2(late, out_dir / "model.bin")
    assert listing(out_dir) == []


def test_existing_destination(tiny_en_ct2_dir: Path, tiny_en_ggml: Path, tmp_path: Path) -> None:
    dst = tmp_path / "model.bin"
    dst.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        convert_ct2(tiny_en_ct2_dir, dst)
    assert dst.read_bytes() == b"precious"
    convert_ct2(tiny_en_ct2_dir, dst, overwrite=True)
    assert sha256(dst) == sha256(tiny_en_ggml)
    assert listing(tmp_path) == ["model.bin"]


def test_atomic_write(tmp_path: Path) -> None:
    dst = tmp_path / "file.bin"
    dst.write_bytes(b"old")

    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), atomic_write(dst, overwrite=True) as f:
            f.write(b"partial")
            raise exc
        assert dst.read_bytes() == b"old" and listing(tmp_path) == ["file.bin"]

    def reject(path: Path) -> None:
        assert path.parent == tmp_path and path.read_bytes() == b"new"
        raise ModelError("rejected")

    with pytest.raises(ModelError, match="rejected"), atomic_write(dst, overwrite=True, check=reject) as f:
        f.write(b"new")
    assert dst.read_bytes() == b"old" and listing(tmp_path) == ["file.bin"]

    with pytest.raises(FileExistsError), atomic_write(dst) as f:
        pass
    with atomic_write(dst, overwrite=True) as f:
        f.write(b"new")
    assert dst.read_bytes() == b"new" and listing(tmp_path) == ["file.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert dst.stat().st_mode & 0o777 == 0o666 & ~umask


# --------------------------------------------------------------------------
# command line


def test_cli(tiny_en_ct2_dir: Path, tiny_en_ggml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "cli.bin"
    assert convert_main([str(tiny_en_ct2_dir), str(dst)]) == 0
    assert "tiny.en, 167 tensors" in capsys.readouterr().out
    assert sha256(dst) == sha256(tiny_en_ggml)
    assert convert_main([str(tiny_en_ct2_dir), str(dst)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert convert_main([str(tiny_en_ct2_dir), str(dst), "--overwrite"]) == 0
    assert convert_main([str(tmp_path / "nowhere"), str(tmp_path / "x.bin")]) == 1
    assert "does not exist" in capsys.readouterr().err
