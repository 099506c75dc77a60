"""The package tree shows its layers: the ggml format at the bottom (models/ggml_file),
conversion and the model store above it with their imports at module top (no
function-local import hiding a cycle), one vad/ package, no runtime path into the
whisper.cpp source tree, no test-only code installed."""

from __future__ import annotations

import ast
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import whisperx_native as wn

PACKAGE = Path(wn.__file__).parent


def _modules():
    return [p for p in sorted(PACKAGE.rglob("*.py")) if "vendor" not in p.parts]


def _local_imports(path: Path):
    """(module, line) of every relative import inside a function of ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and node.level:
                    yield "." * node.level + (node.module or ""), node.lineno


@pytest.mark.parametrize("package, other", [("models", "convert"), ("convert", "models")])
def test_models_and_convert_import_each_other_at_module_top(package, other):
    found = [f"{p.relative_to(PACKAGE)}:{line} {mod}" for p in sorted((PACKAGE / package).glob("*.py"))
             for mod, line in _local_imports(p) if mod.startswith(f"..{other}")]
    assert not found, found


@pytest.mark.parametrize("first", ["whisperx_native.convert", "whisperx_native.models.store",
                                   "whisperx_native.models.cli", "whisperx_native.models.ggml_file",
                                   "whisperx_native.vad", "whisperx_native.realtime"])
def test_each_layer_imports_on_its_own(first):
    proc = subprocess.run([sys.executable, "-c", f"import {first}"], capture_output=True, text=True,
                          cwd=tempfile.gettempdir())  # outside the checkout: the installed package
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_runtime_code_never_points_into_the_source_tree():
    """Paths into vendor/whisper.cpp work in a checkout only; comments may cite patches."""
    found = []
    for p in _modules():
        for node in ast.walk(ast.parse(p.read_text(), str(p))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value == "vendor":
                found.append(f"{p.relative_to(PACKAGE)}:{node.lineno}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "whisper.cpp/" in node.value \
                    and "vendor" in node.value:
                found.append(f"{p.relative_to(PACKAGE)}:{node.lineno}")
    assert not found, found


def test_offline_and_streaming_vad_are_one_package():
    from whisperx_native import realtime, vad

    assert not (PACKAGE / "vad_filter.py").exists() and not (PACKAGE / "realtime" / "vad.py").exists()
    assert realtime.StreamingVad is vad.StreamingVad and realtime.default_vad_model is vad.default_vad_model
    assert vad.default_vad_model().name == "silero-v6.2.0-ggml.bin"
    assert "vendor" not in vad.default_vad_model().parts  # the installed copy, never the source tree's


def test_test_only_code_is_not_in_the_package():
    for gone in ("_textnorm.py", "models/synthetic.py"):
        assert not (PACKAGE / gone).exists(), gone
    from whisperx_native.models import store

    assert store.SYNTHETIC_TOKEN_PREFIX == b"<synthetic>"  # what the store refuses stays in it
