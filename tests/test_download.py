"""Downloads against a real HTTP server on 127.0.0.1: resume, checksums, errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import whisperx_native as wn
from whisperx_native.models import store
from whisperx_native.models.download import download, part_path
from whisperx_native.models.ggml_file import validate
from whisperx_native.models.quantize import quantize_model

from _model_server import ModelServer


@pytest.fixture(scope="module")
def model_bytes(tiny_en_ggml, tmp_path_factory) -> bytes:
    """A real, valid model file small enough to serve many times: tiny.en q5_1."""
    out = tmp_path_factory.mktemp("served") / "ggml-tiny.en-q5_1.bin"
    quantize_model(tiny_en_ggml, out, "q5_1")
    return out.read_bytes()


@pytest.fixture
def server(model_bytes):
    with ModelServer({"ggml-tiny.en-q5_1.bin": model_bytes, "junk.bin": b"\0" * 100_000}) as srv:
        yield srv


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def test_download_streams_verifies_and_leaves_no_partial_file(server, model_bytes, tmp_path):
    target = tmp_path / "m.bin"
    download(f"{server.url}/ok/ggml-tiny.en-q5_1.bin", target, sha1=_sha1(model_bytes), progress=False)
    assert target.read_bytes() == model_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin"]
    assert server.requests() == [("ok", "ggml-tiny.en-q5_1.bin", None)]


def test_interrupted_download_resumes_with_a_range_request(server, model_bytes, tmp_path):
    target = tmp_path / "m.bin"
    download(f"{server.url}/drop/ggml-tiny.en-q5_1.bin", target, sha1=_sha1(model_bytes), retries=1,
             progress=False)
    assert target.read_bytes() == model_bytes
    reqs = server.requests()
    assert len(reqs) == 2 and reqs[0][2] is None
    resumed_at = int(reqs[1][2].removeprefix("bytes=").removesuffix("-"))
    assert 0 < resumed_at < len(model_bytes)  # asked only for the rest


def test_a_failed_download_keeps_its_part_for_the_next_call(server, model_bytes, tmp_path):
    target = tmp_path / "m.bin"
    url = f"{server.url}/drop/ggml-tiny.en-q5_1.bin"
    with pytest.raises(wn.ModelError, match="connection") as exc:
        download(url, target, sha1=_sha1(model_bytes), retries=0, progress=False)
    assert "to resume" in str(exc.value)
    assert not target.exists()
    kept = part_path(target).stat().st_size
    assert 0 < kept < len(model_bytes)
    download(url, target, sha1=_sha1(model_bytes), retries=0, progress=False)
    assert target.read_bytes() == model_bytes
    assert server.requests()[-1][2] == f"bytes={kept}-"
    assert not part_path(target).exists()


def test_a_connection_that_always_drops_fails_after_the_retries(server, tmp_path):
    with pytest.raises(wn.ModelError, match="after 3 attempts"):
        download(f"{server.url}/dropall/ggml-tiny.en-q5_1.bin", tmp_path / "m.bin", retries=2, progress=False)
    assert len(server.requests()) == 3
    assert not (tmp_path / "m.bin").exists()


def test_a_corrupted_copy_fails_the_checksum_and_is_deleted(server, model_bytes, tmp_path):
    target = tmp_path / "m.bin"
    with pytest.raises(wn.ModelError, match="checksum mismatch"):
        download(f"{server.url}/corrupt/ggml-tiny.en-q5_1.bin", target, sha1=_sha1(model_bytes), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_without_a_checksum_the_file_must_still_validate(server, tmp_path):
    with pytest.raises(wn.ModelError, match="rejected.*magic"):
        download(f"{server.url}/ok/junk.bin", tmp_path / "m.bin", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_http_errors(server, tmp_path):
    with pytest.raises(wn.ModelError, match="HTTP 404"):
        download(f"{server.url}/404/ggml-tiny.en-q5_1.bin", tmp_path / "m.bin", retries=2, progress=False)
    assert len(server.requests("404")) == 1  # not worth retrying
    with pytest.raises(wn.ModelError, match="HTTP 500"):
        download(f"{server.url}/500/ggml-tiny.en-q5_1.bin", tmp_path / "m.bin", retries=2, progress=False)
    assert len(server.requests("500")) == 3  # may pass: retried
    assert list(tmp_path.iterdir()) == []


def test_a_stalled_server_times_out(server, tmp_path):
    with pytest.raises(wn.ModelError, match="timed out"):
        download(f"{server.url}/stall/ggml-tiny.en-q5_1.bin", tmp_path / "m.bin", timeout=0.5, retries=0,
                 progress=False)


def test_a_server_ignoring_range_is_downloaded_from_the_start(server, model_bytes, tmp_path):
    target = tmp_path / "m.bin"
    part_path(target).write_bytes(b"garbage that is not a prefix of the file")
    download(f"{server.url}/norange/ggml-tiny.en-q5_1.bin", target, sha1=_sha1(model_bytes), progress=False)
    assert target.read_bytes() == model_bytes


def test_install_by_name_downloads_from_the_configured_url(server, model_bytes, tmp_path, monkeypatch):
    monkeypatch.setenv("WHISPERX_NATIVE_MODEL_URL", f"{server.url}/drop")
    res = store.install("tiny.en-q5_1", cache=tmp_path, offline=False, progress=False)
    assert res.source == "download" and res.path.read_bytes() == model_bytes
    assert [a.source for a in res.attempts] == ["cache", "download"]
    assert "no published checksum" in res.attempts[-1].detail
    # a second install finds it in the cache and downloads nothing more
    n = len(server.requests())
    assert store.install("tiny.en-q5_1", cache=tmp_path, offline=False).source == "cache"
    assert len(server.requests()) == n
    monkeypatch.setenv("WHISPERX_NATIVE_CACHE", str(tmp_path))
    with wn.Model("tiny.en-q5_1", n_threads=2) as m:  # wn.Model resolves names through the same store
        assert m.path == str(res.path) and m.info.wtype.name == "q5_1"


def test_a_download_of_the_wrong_model_is_refused_and_the_next_source_used(server, tmp_path, tiny_en_ct2_dir):
    # The server offers a q5_1 file under tiny.en's name: header check fails, conversion follows.
    server.files["ggml-tiny.en.bin"] = server.files["ggml-tiny.en-q5_1.bin"]
    res = store.install("tiny.en", cache=tmp_path, base_url=f"{server.url}/ok", offline=False, progress=False)
    assert res.source == "convert"
    failed = res.attempts[1]
    assert failed.source == "download" and not failed.ok
    # tiny.en has a published SHA-1: the served bytes do not have it
    assert "checksum mismatch" in failed.detail
    assert validate(res.path).wtype.name == "f16"


def test_when_every_source_fails_one_error_lists_them_all(server, tmp_path):
    with pytest.raises(wn.ModelError) as exc:
        store.install("small.en", cache=tmp_path, base_url=f"{server.url}/404", offline=False, progress=False)
    msg = str(exc.value)
    assert "could not install model 'small.en'" in msg
    for line in ("cache: ", "download: HTTP 404", "convert: no CTranslate2 source"):
        assert line in msg, msg
    assert not any(p.name.startswith("ggml-") for p in Path(tmp_path).iterdir())
