"""Quantization through ggml's kernels: layout, exact q8_0 blocks, real transcription."""

from __future__ import annotations

import json

import numpy as np
import pytest

import whisperx_native as wn
from whisperx_native._native import _core
from whisperx_native.models.ggml_file import validate
from whisperx_native.models.quantize import quantize_matrix, quantize_model
from whisperx_native.models.registry import ftype_of

from _util import JFK_TEXT, JFK_WAV, normalize, run_python


def _q8_0_reference(x: np.ndarray) -> bytes:
    """ggml's block_q8_0 written out in numpy: per 32 values an f16 scale and 32 int8."""
    blocks = x.reshape(-1, 32).astype(np.float32)
    amax = np.abs(blocks).max(axis=1)
    d = amax / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1), 0.0).astype(np.float32)
    q = np.round(blocks * inv[:, None]).astype(np.int8)  # ggml rounds half away from zero: roundf
    out = bytearray()
    for scale, row in zip(d.astype(np.float16), q):
        out += scale.tobytes() + row.tobytes()
    return bytes(out)


def test_q8_0_blocks_equal_a_reference_implementation():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 128)).astype(np.float32)
    x[3] = 0.0  # an all-zero row: scale 0, no division by zero
    ours = quantize_matrix(x, "q8_0", n_threads=2).tobytes()
    assert len(ours) == 8 * 4 * 34
    assert ours == _q8_0_reference(x)


def test_quantize_rows_checks_its_arguments():
    x = np.ones((2, 64), np.float32)
    with pytest.raises(wn.OptionError, match="dst holds"):  # an OptionError is a ValueError too
        _core.quantize_rows(8, x, np.empty(10, np.uint8))
    with pytest.raises(wn.OptionError, match="not a quantized type"):
        _core.quantize_rows(1, x, np.empty(256, np.uint8))
    with pytest.raises(wn.OptionError, match="whole blocks"):
        _core.quantize_rows(8, np.ones((2, 48), np.float32), np.empty(68, np.uint8))
    with pytest.raises(wn.OptionError, match="out of range"):
        _core.quant_type_info(-1)
    assert _core.quant_type_info(8) == (32, 34, False)


@pytest.fixture(scope="module")
def quantized(tiny_en_ggml, tmp_path_factory):
    out = tmp_path_factory.mktemp("quantized")
    return {q: quantize_model(tiny_en_ggml, out / f"tiny.en-{q}.bin", q) for q in ("q8_0", "q5_0", "q5_1", "q4_0")}


def test_quantized_layout_is_what_whisper_cpp_quantize_writes(quantized, tiny_en_ggml):
    src = validate(tiny_en_ggml)
    for q, path in quantized.items():
        info = validate(path)
        assert info.hparams.ftype == ftype_of(q) and info.hparams.ftype // 1000 == 2
        types = {t.name: t.type.name for t in info.tensors}
        assert types["encoder.conv1.weight"] == types["encoder.conv2.weight"] == "f16"
        assert types["encoder.positional_embedding"] == types["decoder.positional_embedding"] == "f32"
        assert types["encoder.blocks.0.attn.query.bias"] == "f32"
        assert types["decoder.token_embedding.weight"] == q
        assert types["decoder.blocks.3.mlp.2.weight"] == q
        assert info.file_size < 0.6 * src.file_size
        # untouched tensors are copied byte for byte
        a, b = tiny_en_ggml.read_bytes(), path.read_bytes()
        for name in ("encoder.conv1.weight", "decoder.positional_embedding", "decoder.ln.bias"):
            ts = next(t for t in src.tensors if t.name == name)
            tq = next(t for t in info.tensors if t.name == name)
            assert a[ts.offset:ts.offset + ts.nbytes] == b[tq.offset:tq.offset + tq.nbytes]


def test_quantized_tiny_en_transcribes_jfk_in_a_fresh_process(quantized):
    # A fresh interpreter: whatever a quantized kernel does, pytest survives to report it.
    code = f"""
    import json, whisperx_native as wn
    out = {{}}
    for q, path in {json.dumps({q: str(quantized[q]) for q in ("q8_0", "q5_0", "q4_0")})}.items():
        with wn.Model(path, n_threads=2) as m:
            out[q] = m.transcribe({str(JFK_WAV)!r}, language="en").text
    print(json.dumps(out))
    """
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    texts = json.loads(proc.stdout.strip().splitlines()[-1])
    want = normalize(JFK_TEXT).split()
    for q, text in texts.items():
        got = normalize(text).split()
        matched = sum(1 for w in got if w in want)
        print(q, text)
        # q8_0/q5_x match exactly after normalisation; q4_0 loses a word or two on tiny
        if q == "q4_0":
            assert matched >= len(want) - 3 and abs(len(got) - len(want)) <= 3, (q, text)
        else:
            assert got == want, (q, text)


def test_k_quants_on_base(base_ggml, tmp_path):
    out = quantize_model(base_ggml, tmp_path / "base-q4_k.bin", "q4_k")
    assert validate(out).wtype.name.lower() == "q4_k"
    with wn.Model(out, n_threads=2) as m:
        text = m.transcribe(JFK_WAV, language="en", preset="fast").text
    # every word right; base sometimes adds a "[Music]" tag after the speech
    assert normalize(text).startswith(normalize(JFK_TEXT)), text


def test_refusals(quantized, tiny_en_ggml, tmp_path):
    with pytest.raises(wn.ModelError, match="not F16"):
        quantize_model(quantized["q8_0"], tmp_path / "x.bin", "q4_0")
    with pytest.raises(wn.ModelError, match="multiples of 256"):
        quantize_model(tiny_en_ggml, tmp_path / "x.bin", "q4_k")  # tiny rows are 384 wide
    with pytest.raises(wn.ModelError, match="unknown quantization"):
        quantize_model(tiny_en_ggml, tmp_path / "x.bin", "q3_0")
    with pytest.raises(FileExistsError):
        quantize_model(tiny_en_ggml, quantized["q8_0"], "q8_0")
    assert list(tmp_path.iterdir()) == []
