"""Bad model files reach whisper.cpp never: ModelError, and the interpreter lives."""

from __future__ import annotations

import json

import pytest

import whisperx_native as wn
from whisperx_native.models.ggml_file import validate
from whisperx_native.models.store import resolve_model_path
from _util import run_python


def _corruptions(good: bytes):
    size = len(good)
    yield "empty", b""
    yield "magic", b"XXXX" + good[4:]
    yield "random", bytes((i * 7919 + 13) % 251 for i in range(4096))
    for frac in (0.0001, 0.001, 0.01, 0.3, 0.9, 0.9999):
        yield f"truncated@{frac}", good[: int(size * frac)]
    yield "absurd_vocab", good[:4] + (10**9).to_bytes(4, "little") + good[8:]
    yield "negative_layers", good[:20] + (-1).to_bytes(4, "little", signed=True) + good[24:]
    yield "bad_ftype", good[:44] + (77).to_bytes(4, "little") + good[48:]
    yield "trailing", good + b"\0" * 100


def test_corrupt_model_files_raise_model_error_in_a_subprocess(tiny_en_ggml, tmp_path):
    good = tiny_en_ggml.read_bytes()
    paths = {}
    for name, data in _corruptions(good):
        p = tmp_path / f"{name}.bin"
        p.write_bytes(data)
        paths[name] = str(p)
    code = f"""
    import json, whisperx_native as wn
    out = {{}}
    for name, path in {json.dumps(paths)}.items():
        try:
            wn.Model(path)
            out[name] = "loaded"
        except wn.ModelError as exc:
            out[name] = "ModelError: " + str(exc)
    print(json.dumps(out))
    """
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in paths:
        assert out[name].startswith("ModelError"), (name, out[name])


def test_missing_model_and_unknown_name():
    with pytest.raises(wn.ModelError, match="not found"):
        wn.Model("/nonexistent/ggml-model.bin")
    with pytest.raises(wn.ModelError, match="unknown model"):
        resolve_model_path("no-such-model")
    assert issubclass(wn.ModelError, ValueError)


def test_a_directory_is_not_a_model(tmp_path):
    with pytest.raises(wn.ModelError):
        wn.Model(tmp_path)


def test_a_known_name_is_converted_from_its_installed_package_once(tmp_path, tiny_en_ct2_dir):
    path = resolve_model_path("tiny.en", cache=tmp_path)
    assert path == tmp_path / "ggml-tiny.en.bin"
    assert validate(path).hparams.n_audio_layer == 4
    mtime = path.stat().st_mtime_ns
    assert resolve_model_path("tiny.en", cache=tmp_path) == path
    assert path.stat().st_mtime_ns == mtime
    # no temporaries left; hidden beside it: the install lock and the provenance record
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ggml-tiny.en.bin.json", ".ggml-tiny.en.bin.lock",
                                                          "ggml-tiny.en.bin"]


def test_a_damaged_cached_model_is_installed_again(tmp_path, tiny_en_ct2_dir):
    path = resolve_model_path("tiny.en", cache=tmp_path)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # e.g. a disk that filled up under another tool
    assert resolve_model_path("tiny.en", cache=tmp_path) == path
    assert path.read_bytes() == good


def test_context_parses_the_file_once_when_given_its_info(tiny_en_ggml, monkeypatch) -> None:
    """Context validates the file itself (whisper.cpp trusts its input) unless its caller
    hands it the ModelInfo of that very file: then it is not parsed again."""
    import dataclasses

    from whisperx_native import _native
    from whisperx_native.models import ggml_file

    info = ggml_file.validate(tiny_en_ggml)
    calls = []
    real = ggml_file.validate
    monkeypatch.setattr(ggml_file, "validate", lambda p: calls.append(p) or real(p))
    with _native.Context(str(tiny_en_ggml), info=info) as ctx:
        assert ctx.info is info and calls == []
    with _native.Context(str(tiny_en_ggml)) as ctx:
        assert len(calls) == 1 and ctx.info.path == info.path
    stale = dataclasses.replace(info, file_size=info.file_size + 1)
    with _native.Context(str(tiny_en_ggml), info=stale):
        assert len(calls) == 2  # not this file as it is now: validated again
