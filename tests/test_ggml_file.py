"""The ggml file layout and its validator, on a real converted tiny.en file.

Every bad file is derived from the good one; each must raise ModelError naming
the file and the problem, since whisper.cpp itself would crash or abort on it.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import struct
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from whisperx_native.errors import ModelError
from whisperx_native.models.ggml_file import (
    FTYPE_TO_GGML_TYPE,
    GGML_FILE_MAGIC,
    GGML_TYPES,
    SUPPORTED_FTYPES,
    GGMLWriter,
    HParams,
    ModelInfo,
    TensorInfo,
    expected_tensors,
    ggml_type,
    read_header,
    read_mel_filters,
    read_vocab,
    validate,
)

TINY_EN = HParams(51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1)
BASE = HParams(51865, 1500, 512, 8, 6, 448, 512, 8, 6, 80, 1)
LARGE_V3 = HParams(51866, 1500, 1280, 20, 32, 448, 1280, 20, 32, 128, 1)
HPARAM_FIELDS = [
    "n_vocab", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer",
    "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer", "n_mels", "ftype",
]  # fmt: skip
MEL_OFFSET = 48  # n_mel, n_fft, then the filters
VOCAB_OFFSET = MEL_OFFSET + 8 + 4 * 80 * 201


def field_offset(name: str) -> int:
    return 4 + 4 * HPARAM_FIELDS.index(name)


def header_offset(t: TensorInfo) -> int:
    """Where the record of tensor ``t`` starts (its n_dims field)."""
    return t.offset - len(t.name) - 4 * len(t.ne) - 12


def assert_invalid(path: Path, *fragments: str) -> str:
    with pytest.raises(ModelError) as exc:
        validate(path)
    msg = str(exc.value)
    assert str(path) in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


@pytest.fixture(scope="module")
def info(tiny_en_ggml: Path) -> ModelInfo:
    return validate(tiny_en_ggml)


@pytest.fixture(scope="module")
def work_file(tiny_en_ggml: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the good file; tests patch it in place and restore it."""
    path = tmp_path_factory.mktemp("ggml") / "model.bin"
    shutil.copyfile(tiny_en_ggml, path)
    return path


@contextlib.contextmanager
def patched(path: Path, offset: int, data: bytes):
    with open(path, "r+b") as f:
        f.seek(offset)
        original = f.read(len(data))
        f.seek(offset)
        f.write(data)
    try:
        yield path
    finally:
        with open(path, "r+b") as f:
            f.seek(offset)
            f.write(original)


def i32(v: int) -> bytes:
    return struct.pack("<i", v)


def tensor(info: ModelInfo, name: str) -> TensorInfo:
    return next(t for t in info.tensors if t.name == name)


def rebuild(info: ModelInfo, good: Path, out: Path, records: list[bytes | TensorInfo]) -> Path:
    """Write the good header followed by ``records`` (tensors of the good file or raw bytes)."""
    data = good.read_bytes()
    header_end = header_offset(info.tensors[0])
    with open(out, "wb") as f:
        f.write(data[:header_end])
        for r in records:
            f.write(data[header_offset(r) : r.offset + r.nbytes] if isinstance(r, TensorInfo) else r)
    return out


# --------------------------------------------------------------------------
# the good file


def test_good_file_layout(tiny_en_ggml: Path, info: ModelInfo) -> None:
    assert info.hparams == TINY_EN
    assert (info.model_type, info.is_multilingual, info.ftype, info.wtype.name) == ("tiny", False, 1, "f16")
    assert info.n_tokens == 50257
    assert [t.name for t in info.tensors] == [s.name for s in expected_tensors(TINY_EN)]
    assert len(info.tensors) == 11 + 15 * 4 + 24 * 4 == 167

    # records are back to back, from the end of the vocabulary to the end of the file
    end = read_header(tiny_en_ggml).tensors_offset
    for t in info.tensors:
        assert header_offset(t) == end
        end = t.offset + t.nbytes
    assert end == info.file_size == tiny_en_ggml.stat().st_size
    assert info.weight_bytes == sum(t.nbytes for t in info.tensors)

    types = {t.name: t.type.name for t in info.tensors}
    assert types["encoder.conv1.weight"] == types["encoder.conv2.weight"] == "f16"
    assert types["decoder.token_embedding.weight"] == types["encoder.blocks.0.mlp.0.weight"] == "f16"
    for name in ("encoder.conv1.bias", "encoder.positional_embedding", "decoder.positional_embedding",
                 "decoder.ln.weight", "decoder.blocks.3.cross_attn.value.bias"):  # fmt: skip
        assert types[name] == "f32"
    assert tensor(info, "encoder.conv1.weight").shape == (384, 80, 3)
    assert tensor(info, "encoder.conv1.bias").ne == (1, 384)
    assert tensor(info, "decoder.token_embedding.weight").ne == (384, 51864)


def test_read_header_and_vocab(tiny_en_ggml: Path, info: ModelInfo) -> None:
    header = read_header(tiny_en_ggml)
    assert header.hparams == TINY_EN and header.n_tokens == 50257 and header.file_size == info.file_size
    assert header.tensors_offset == header_offset(info.tensors[0])
    vocab = read_vocab(tiny_en_ggml)
    assert len(vocab) == 50257
    assert vocab[0] == b"!" and vocab[262] == b" the" and vocab[-1] == b"<|endoftext|>"


def test_validate_is_fast(tiny_en_ggml: Path) -> None:
    # ~8 ms here: header + vocab parsed in memory, tensor data skipped by seeks
    best = min(_timed(validate, tiny_en_ggml) for _ in range(5))
    assert best < 0.1, f"validate took {best * 1e3:.1f} ms"


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def test_tensor_order_is_free(info: ModelInfo, tiny_en_ggml: Path, tmp_path: Path) -> None:
    # whisper.cpp looks tensors up by name, so any order loads
    records = list(info.tensors)
    records[0], records[-1] = records[-1], records[0]
    assert validate(rebuild(info, tiny_en_ggml, tmp_path / "swapped.bin", records)).hparams == TINY_EN


@pytest.mark.parametrize("ftype", [1001, 2001])
def test_ftype_is_read_modulo_1000(work_file: Path, ftype: int) -> None:
    with patched(work_file, field_offset("ftype"), i32(ftype)):
        assert validate(work_file).ftype == 1


# --------------------------------------------------------------------------
# not a model file at all


def test_missing_file(tmp_path: Path) -> None:
    assert_invalid(tmp_path / "nope.bin", "not found")


def test_directory(tmp_path: Path) -> None:
    assert_invalid(tmp_path, "is a directory")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.bin").write_bytes(b"")
    assert_invalid(tmp_path / "empty.bin", "empty")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_not_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")  # opening it for reading would block forever
    assert_invalid(tmp_path / "fifo", "not a regular file")


@pytest.mark.parametrize(
    "magic, fragment",
    [
        (b"XXXX", "bad magic"),
        (b"GGUF", "GGUF"),
        (struct.pack("<I", 0x67676A74), "bad magic"),  # "ggjt": llama.cpp's, not whisper.cpp's
        (struct.pack(">I", GGML_FILE_MAGIC), "bad magic"),  # big-endian
    ],
)
def test_wrong_magic(work_file: Path, magic: bytes, fragment: str) -> None:
    with patched(work_file, 0, magic):
        assert_invalid(work_file, fragment)


def test_random_bytes(tmp_path: Path, tiny_en_ggml: Path, info: ModelInfo) -> None:
    rng = random.Random(1234)
    good = tiny_en_ggml.read_bytes()
    prefixes = [b"", good[:4], good[:48], good[:VOCAB_OFFSET], good[: header_offset(info.tensors[0])]]
    path = tmp_path / "random.bin"
    for prefix in prefixes:
        for size in (1, 3, 4, 12, 100, 4096, 1 << 20):
            path.write_bytes(prefix + rng.randbytes(size))
            assert_invalid(path)


# --------------------------------------------------------------------------
# truncation


def test_truncated_at_every_boundary(tiny_en_ggml: Path, info: ModelInfo, tmp_path: Path) -> None:
    vocab = read_vocab(tiny_en_ggml)
    token_ends = np.cumsum([4 + len(t) for t in vocab]) + VOCAB_OFFSET + 4
    offsets = set(range(0, 100))  # magic, hparams, mel header, byte by byte
    for boundary in (MEL_OFFSET, MEL_OFFSET + 8, VOCAB_OFFSET, VOCAB_OFFSET + 4, *token_ends[:5], *token_ends[-5:]):
        offsets.update(range(boundary - 3, boundary + 4))
    # Each cut costs a full header parse (~8 ms), so: every kind of cut for the
    # first and last tensors, one kind per tensor (cycling) for all the others.
    for i, t in enumerate(info.tensors):
        start = header_offset(t)
        cuts = [start, start + 1, start + 11, start + 12, t.offset - 1, t.offset, t.offset + 1, t.offset + t.nbytes - 1]
        offsets.update(cuts if i < 2 or i >= len(info.tensors) - 2 else [cuts[i % len(cuts)]])
    rng = random.Random(99)
    offsets.update(rng.randrange(info.file_size) for _ in range(50))
    offsets = sorted((o for o in offsets if 0 <= o < info.file_size), reverse=True)

    # shrink one copy step by step: each truncation costs no copying
    path = tmp_path / "truncated.bin"
    shutil.copyfile(tiny_en_ggml, path)
    for offset in offsets:
        os.truncate(path, offset)
        assert_invalid(path, "empty" if offset == 0 else "truncated")


def test_header_only_file(tiny_en_ggml: Path, info: ModelInfo, tmp_path: Path) -> None:
    # like whisper.cpp's for-tests-*.bin: it would load with uninitialized weights
    path = rebuild(info, tiny_en_ggml, tmp_path / "header-only.bin", [])
    assert_invalid(path, "no tensors")


def test_missing_tensor(tiny_en_ggml: Path, info: ModelInfo, tmp_path: Path) -> None:
    records = [t for t in info.tensors if t.name != "decoder.blocks.2.cross_attn.key.weight"]
    path = rebuild(info, tiny_en_ggml, tmp_path / "missing.bin", records)
    assert_invalid(path, "1 of 167 tensors missing", "decoder.blocks.2.cross_attn.key.weight")


# --------------------------------------------------------------------------
# hyperparameters


@pytest.mark.parametrize("field", HPARAM_FIELDS)
def test_every_single_bit_flip_in_hparams_is_rejected(work_file: Path, field: str) -> None:
    offset = field_offset(field)
    value = getattr(TINY_EN, field)
    for bit in range(32):
        flipped = struct.unpack("<i", struct.pack("<I", (value & 0xFFFFFFFF) ^ (1 << bit)))[0]
        with patched(work_file, offset, i32(flipped)):
            assert_invalid(work_file)


def test_every_single_bit_flip_in_magic_is_rejected(work_file: Path) -> None:
    for bit in range(32):
        with patched(work_file, 0, struct.pack("<I", GGML_FILE_MAGIC ^ (1 << bit))):
            assert_invalid(work_file, "bad magic")


@pytest.mark.parametrize("field", HPARAM_FIELDS)
@pytest.mark.parametrize("value", [-1, 0, 2**31 - 1, -(2**31)])
def test_absurd_hparam_values(work_file: Path, field: str, value: int) -> None:
    with patched(work_file, field_offset(field), i32(value)):
        assert_invalid(work_file)


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("n_vocab", 51863, "n_vocab 51863 is not a Whisper vocabulary size"),
        ("n_vocab", 51867, "n_vocab 51867"),
        ("n_vocab", 51865, "decoder.token_embedding.weight' has dims"),  # valid, but not this model's
        ("n_audio_ctx", 1499, "n_audio_ctx 1499"),
        ("n_text_ctx", 449, "n_text_ctx 449"),
        ("n_audio_head", 5, "64-wide attention heads"),
        ("n_text_head", 12, "64-wide attention heads"),
        ("n_audio_state", 512, "n_audio_state 512"),
        ("n_audio_layer", 5, "15 of 182 tensors missing"),
        ("n_text_layer", 3, "unknown tensor name"),
        ("n_audio_layer", 65, "n_audio_layer 65 is out of range"),
        ("n_mels", 81, "n_mels 81 is not 80 or 128"),
        ("n_mels", 128, "mel filterbank is 80x201, expected 128x201"),
        ("ftype", 0, "ftype 0 (all F32) is not runnable"),
        ("ftype", 4, "unknown to ggml"),
        ("ftype", 5, "unknown to ggml"),
        ("ftype", 28, "unknown to ggml"),
        ("ftype", 15, "weights) is not supported"),
        ("ftype", 3001, "quantization version 3"),
        ("ftype", 2, "quantization format v0"),
        ("ftype", 2002, "has type f16, expected q4_0"),
        ("ftype", 2007, "has type f16, expected q8_0"),
        ("ftype", 2012, "q4_K needs rows that are multiples of 256"),
    ],
)
def test_bad_hparams_are_explained(work_file: Path, field: str, value: int, fragment: str) -> None:
    with patched(work_file, field_offset(field), i32(value)):
        assert_invalid(work_file, fragment)


def test_hparams_check_accepts_real_models() -> None:
    for hp in (TINY_EN, BASE, LARGE_V3, HParams(51866, 1500, 1280, 20, 32, 448, 1280, 20, 4, 128, 1)):  # turbo
        hp.check()
    assert LARGE_V3.model_type == "large" and LARGE_V3.n_languages == 100
    assert BASE.is_multilingual and BASE.n_languages == 99 and not TINY_EN.is_multilingual
    assert replace(BASE, ftype=2008).wtype.name == "q5_0"


# --------------------------------------------------------------------------
# mel filters and vocabulary


@pytest.mark.parametrize(
    "offset, data, fragment",
    [
        (MEL_OFFSET, i32(81), "mel filterbank is 81x201"),
        (MEL_OFFSET + 4, i32(200), "mel filterbank is 80x200"),
        (MEL_OFFSET + 4, i32(-201), "mel filterbank"),
        (MEL_OFFSET + 8 + 4 * 500, struct.pack("<f", float("nan")), "NaN"),
        (MEL_OFFSET + 8 + 4 * 80 * 201 - 4, struct.pack("<f", float("inf")), "NaN or infinity"),
        (VOCAB_OFFSET, i32(-1), "vocabulary has -1 tokens"),
        (VOCAB_OFFSET, i32(0), "vocabulary has 0 tokens"),
        (VOCAB_OFFSET, i32(51865), "vocabulary has 51865 tokens, expected 50256..51864"),
        (VOCAB_OFFSET, i32(2**31 - 1), "vocabulary has"),
        (VOCAB_OFFSET + 4, struct.pack("<I", 257), "token 0 claims 257 bytes"),
        (VOCAB_OFFSET + 4, struct.pack("<I", 2**32 - 1), "claims 4294967295 bytes"),
    ],
)
def test_bad_mel_or_vocab(work_file: Path, offset: int, data: bytes, fragment: str) -> None:
    with patched(work_file, offset, data):
        assert_invalid(work_file, fragment)


def test_shifted_token_lengths_are_caught(work_file: Path) -> None:
    # a wrong length desynchronizes everything after it; the parse must still fail cleanly
    for delta in (-1, 1, 2, 100):
        with patched(work_file, VOCAB_OFFSET + 4, struct.pack("<I", 1 + delta)):  # token 0 is b"!"
            assert_invalid(work_file)


# --------------------------------------------------------------------------
# the tensor table


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        (0, 0, "n_dims 0 is not 1..4"),
        (0, 5, "n_dims 5 is not 1..4"),  # whisper.cpp would overflow its ne[4]
        (0, -1, "n_dims -1"),
        (0, 3, ""),  # desynchronized dims/name
        (4, 0, "name length 0"),
        (4, -1, "name length -1"),
        (4, 10**9, "name length 1000000000"),
        (8, 99, "unknown ggml type id 99"),
        (8, 4, "unknown ggml type id 4"),  # removed Q4_2
        (8, 2, "has type q4_0, expected f32"),
        (8, 1, "has type f16, expected f32"),
    ],
)
def test_bad_tensor_header(work_file: Path, info: ModelInfo, field: int, value: int, fragment: str) -> None:
    first = info.tensors[0]  # encoder.positional_embedding, f32
    with patched(work_file, header_offset(first) + field, i32(value)):
        assert_invalid(work_file, fragment)


def test_wrong_dims(work_file: Path, info: ModelInfo) -> None:
    t = tensor(info, "encoder.blocks.0.mlp.0.weight")  # ne (384, 1536)
    dims = header_offset(t) + 12
    for ne in ((383, 1536), (1536, 384), (384, 1535)):
        with patched(work_file, dims, struct.pack("<2i", *ne)):
            assert_invalid(work_file, "encoder.blocks.0.mlp.0.weight' has dims", "expected [384, 1536]")


def test_wrong_type_for_weight(work_file: Path, info: ModelInfo) -> None:
    t = tensor(info, "decoder.token_embedding.weight")
    for ttype, name in ((30, "bf16"), (0, "f32"), (8, "q8_0")):
        with patched(work_file, header_offset(t) + 8, i32(ttype)):
            assert_invalid(work_file, f"has type {name}, expected f16")


def test_f32_conv_kernel_flag(work_file: Path, info: ModelInfo) -> None:
    t = tensor(info, "encoder.conv2.weight")
    with patched(work_file, header_offset(t) + 8, i32(0)):
        assert_invalid(work_file, "encoder.conv2.weight' has type f32, expected f16", "aborts on non-F16 conv")


def test_f32_conv_kernel_data(tiny_en_ggml: Path, info: ModelInfo, tmp_path: Path) -> None:
    # the conv kernel really stored as F32 (type and data), as an F32 converter would write it
    data = tiny_en_ggml.read_bytes()
    records: list[bytes | TensorInfo] = []
    for t in info.tensors:
        if t.name == "encoder.conv1.weight":
            f32 = np.frombuffer(data, "<f2", t.nbytes // 2, t.offset).astype("<f4")
            name = t.name.encode()
            records.append(struct.pack("<6i", 3, len(name), 0, *t.ne) + name + f32.tobytes())
        else:
            records.append(t)
    path = rebuild(info, tiny_en_ggml, tmp_path / "f32conv.bin", records)
    assert_invalid(path, "encoder.conv1.weight' has type f32, expected f16")


def test_unknown_and_duplicate_tensor_names(work_file: Path, info: ModelInfo) -> None:
    t = tensor(info, "encoder.blocks.1.attn.query.weight")
    name_at = t.offset - len(t.name)
    with patched(work_file, name_at + len("encoder.blocks."), b"7"):
        assert_invalid(work_file, "unknown tensor name b'encoder.blocks.7.attn.query.weight'")
    with patched(work_file, name_at + len("encoder.blocks."), b"0"):
        assert_invalid(work_file, "'encoder.blocks.0.attn.query.weight' appears twice")
    with patched(work_file, name_at, b"\xff"):
        assert_invalid(work_file, "unknown tensor name")


@pytest.mark.parametrize("extra", [b"\0", b"\0" * 11, b"\0" * 12, b"garbage" * 100])
def test_trailing_bytes(tiny_en_ggml: Path, info: ModelInfo, tmp_path: Path, extra: bytes) -> None:
    path = rebuild(info, tiny_en_ggml, tmp_path / "trailing.bin", [*info.tensors, extra])
    assert_invalid(path, f"{len(extra)} unexpected bytes after the last tensor")


def test_duplicated_last_tensor(tiny_en_ggml: Path, info: ModelInfo, tmp_path: Path) -> None:
    path = rebuild(info, tiny_en_ggml, tmp_path / "dup.bin", [*info.tensors, info.tensors[-1]])
    assert_invalid(path, "unexpected bytes after the last tensor")


def test_random_corruption_of_the_tables(work_file: Path, info: ModelInfo) -> None:
    """Random byte changes in the tensor table always fail; in the header and
    vocabulary they fail or (mel values, token bytes) are harmless, but never
    raise anything but ModelError."""
    rng = random.Random(7)
    tensors_offset = header_offset(info.tensors[0])
    records = [(header_offset(t), t.offset) for t in info.tensors]
    for i in range(300):
        start, end = (0, tensors_offset) if i % 2 else rng.choice(records)
        offset = rng.randrange(start, end)
        with open(work_file, "rb") as f:
            f.seek(offset)
            original = f.read(1)
        new = bytes([original[0] ^ rng.randrange(1, 256)])
        with patched(work_file, offset, new):
            if start >= tensors_offset:
                assert_invalid(work_file)
            else:
                with contextlib.suppress(ModelError):
                    validate(work_file)


# --------------------------------------------------------------------------
# layout tables and the writer


def test_ggml_type_table() -> None:
    expected = {
        "f32": (1, 4), "f16": (1, 2), "bf16": (1, 2), "q4_0": (32, 18), "q4_1": (32, 20),
        "q5_0": (32, 22), "q5_1": (32, 24), "q8_0": (32, 34), "q2_K": (256, 84), "q3_K": (256, 110),
        "q4_K": (256, 144), "q5_K": (256, 176), "q6_K": (256, 210), "q8_K": (256, 292),
    }  # fmt: skip
    for name, sizes in expected.items():
        t = ggml_type(name)
        assert (t.block_size, t.type_size) == sizes and GGML_TYPES[t.id] is t
    assert ggml_type("q4_0").nbytes((512, 2048)) == 512 // 32 * 18 * 2048
    with pytest.raises(ValueError):
        ggml_type("q4_K").nbytes((384, 1))
    assert {f: FTYPE_TO_GGML_TYPE[f].name for f in SUPPORTED_FTYPES} == {
        1: "f16", 2: "q4_0", 3: "q4_1", 7: "q8_0", 8: "q5_0", 9: "q5_1",
        10: "q2_K", 11: "q3_K", 12: "q4_K", 13: "q5_K", 14: "q6_K", 24: "bf16",
    }  # fmt: skip


def test_expected_tensors_for_other_models() -> None:
    for hp in (BASE, LARGE_V3):
        specs = expected_tensors(hp)
        assert len(specs) == len({s.name for s in specs}) == 11 + 15 * hp.n_audio_layer + 24 * hp.n_text_layer
    conv1 = expected_tensors(LARGE_V3)[1]
    assert (conv1.name, conv1.ne, conv1.type.name) == ("encoder.conv1.weight", (3, 128, 1280), "f16")
    assert conv1.kind == "conv"
    quantized = {s.name: s for s in expected_tensors(replace(BASE, ftype=2002))}
    assert quantized["decoder.blocks.0.cross_attn.key.weight"].type.name == "q4_0"
    assert quantized["encoder.conv2.weight"].type.name == "f16"
    assert quantized["decoder.blocks.0.mlp_ln.bias"].type.name == "f32"
    assert quantized["decoder.token_embedding.weight"].nbytes == 512 // 32 * 18 * 51865


def _read_tensor(data: bytes, t: TensorInfo) -> np.ndarray:
    dtype = np.dtype("<f2" if t.type.name == "f16" else "<f4")
    return np.frombuffer(data, dtype, t.nbytes // dtype.itemsize, t.offset).reshape(t.shape)


def test_writer_round_trip_is_byte_identical(tiny_en_ggml: Path, info: ModelInfo, tmp_path: Path) -> None:
    data = tiny_en_ggml.read_bytes()
    filters = np.frombuffer(data, "<f4", 80 * 201, MEL_OFFSET + 8).reshape(80, 201)
    out = tmp_path / "rewritten.bin"
    with open(out, "wb") as f:
        writer = GGMLWriter(f, info.hparams)
        writer.write_header(filters, read_vocab(tiny_en_ggml))
        for t in info.tensors:
            writer.write_tensor(t.name, _read_tensor(data, t))
        writer.finish()
    assert out.read_bytes() == data


def test_writer_refuses_bad_input(tiny_en_ggml: Path, info: ModelInfo, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="ftype 0"), open(os.devnull, "wb") as f:
        GGMLWriter(f, replace(TINY_EN, ftype=0))
    vocab = read_vocab(tiny_en_ggml)
    filters = np.zeros((80, 201), np.float32)
    with open(tmp_path / "w.bin", "wb") as f:
        writer = GGMLWriter(f, TINY_EN)
        with pytest.raises(RuntimeError):
            writer.write_tensor("decoder.ln.bias", np.zeros(384, np.float32))
        with pytest.raises(ModelError, match="shape"):
            writer.write_header(np.zeros((128, 201), np.float32), vocab)
        with pytest.raises(ModelError, match="tokens"):
            writer.write_header(filters, vocab[:100])
        with pytest.raises(ModelError, match="bytes long"):
            writer.write_header(filters, [*vocab[:-1], b"x" * 300])
        writer.write_header(filters, vocab)
        with pytest.raises(ModelError, match="not part of"):
            writer.write_tensor("decoder.ln.gamma", np.zeros(384, np.float32))
        with pytest.raises(ModelError, match="dtype"):
            writer.write_tensor("decoder.ln.bias", np.zeros(384, np.float16))
        with pytest.raises(ModelError, match="shape"):
            writer.write_tensor("decoder.ln.bias", np.zeros((384, 1), np.float32))
        writer.write_tensor("decoder.ln.bias", np.zeros(384, np.float32))
        with pytest.raises(ModelError, match="twice"):
            writer.write_tensor("decoder.ln.bias", np.zeros(384, np.float32))
        with pytest.raises(ModelError, match="166 tensors not written"):
            writer.finish()


def test_error_messages_name_the_file(work_file: Path) -> None:
    with patched(work_file, field_offset("n_mels"), i32(81)):
        msg = assert_invalid(work_file)
    assert msg.startswith(f"invalid whisper.cpp model file '{work_file}': ")
    assert issubclass(ModelError, ValueError)


def test_the_layout_facts_and_what_validate_carries(tiny_en_ggml: Path, info: ModelInfo) -> None:
    """One place for the header's offsets and the end-of-text id; the filterbank comes
    with the ModelInfo (read with the header: nothing parses the file again for it)."""
    from whisperx_native.models import ggml_file

    assert ggml_file.MEL_FILTERS_OFFSET == MEL_OFFSET + 8 and ggml_file.vocab_offset(80) == VOCAB_OFFSET
    assert ggml_file.HEADER_BYTES == MEL_OFFSET
    np.testing.assert_array_equal(info.mel_filters, read_mel_filters(tiny_en_ggml))
    assert info.mel_filters.dtype == np.float32 and not info.mel_filters.flags.writeable
    # whisper.cpp: token_eot = 50256, one more where the vocabulary is multilingual
    assert info.token_eot == 50256 and read_vocab(tiny_en_ggml)[info.token_eot] == b"<|endoftext|>"
    assert replace(TINY_EN, n_vocab=51865).token_eot == replace(TINY_EN, n_vocab=51866).token_eot == 50257
