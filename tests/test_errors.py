"""Every error the package raises on purpose derives from WhisperError (errors.py), and
each keeps the builtin a caller would naturally catch."""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path

import numpy as np
import pytest

import whisperx_native as wn
from whisperx_native import errors

PACKAGE = Path(wn.__file__).parent
#: The Cython sources are not installed (only the compiled module): read them from the checkout.
NATIVE_SOURCES = Path(__file__).resolve().parents[1] / "whisperx_native" / "_native"

#: Builtins raised on purpose that are protocol, not errors: a module's __getattr__, a
#: missing optional dependency, the CLI's own closed-pipe and SIGTERM signals.
PROTOCOL = {"AttributeError", "ImportError", "ModuleNotFoundError", "BrokenPipeError", "KeyboardInterrupt",
            "StopIteration", "StopAsyncIteration", "NotImplementedError"}
_BUILTIN_ERRORS = {name for name, obj in vars(builtins).items()
                   if isinstance(obj, type) and issubclass(obj, BaseException)} - PROTOCOL


def _raised_names(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name):
                yield exc.id, node.lineno


def test_python_modules_raise_no_bare_builtin_errors():
    found = [f"{p.relative_to(PACKAGE).as_posix()}:{line}: {name}"
             for p in sorted(PACKAGE.rglob("*.py")) if "vendor" not in p.parts
             for name, line in _raised_names(ast.parse(p.read_text(), str(p))) if name in _BUILTIN_ERRORS]
    assert not found, "raise a class of errors.py (it can also subclass the builtin):\n" + "\n".join(found)


_CYTHON_RAISE = re.compile(r"^\s*raise (\w+)\b", re.M)

@pytest.mark.parametrize("name", ["quantize.pxi", "vad.pxi", "_core.pyx"])
def test_native_sources_raise_no_bare_builtin_errors(name):
    text = (NATIVE_SOURCES / name).read_text()
    found = [m.group(1) for m in _CYTHON_RAISE.finditer(text)
             if m.group(1) in _BUILTIN_ERRORS and m.group(1) != "MemoryError"]  # allocation failures
    assert not found


def test_each_error_keeps_its_builtin():
    builtin_of = {errors.ModelError: ValueError, errors.AudioError: ValueError, errors.OptionError: ValueError,
                  errors.OptionTypeError: TypeError, errors.NativeError: RuntimeError,
                  errors.InferenceError: RuntimeError, errors.ClosedError: RuntimeError,
                  errors.BusyError: RuntimeError, errors.UsageError: RuntimeError,
                  errors.MemoryBudgetError: MemoryError, errors.OutputExistsError: FileExistsError}
    for cls, base in builtin_of.items():
        assert issubclass(cls, wn.WhisperError) and issubclass(cls, base), cls
    assert issubclass(errors.InferenceError, errors.NativeError)
    for name in errors.__all__:
        assert getattr(wn, name) is getattr(errors, name)


def test_errors_once_bare_are_whisper_errors(tmp_path):
    from whisperx_native import features
    from whisperx_native._fsutil import atomic_write
    from whisperx_native.batch import BatchError, plan_layout
    from whisperx_native.convert.mel import mel_filters
    from whisperx_native.models.ggml_file import ggml_type

    assert issubclass(BatchError, wn.WhisperError)
    with pytest.raises(wn.AudioError):
        features.log_mel(np.zeros(100, np.float32), np.zeros((80, 201), np.float32))
    with pytest.raises(wn.OptionError):
        mel_filters(0)
    with pytest.raises(wn.OptionError):
        ggml_type("q9_9")
    with pytest.raises(wn.ModelError):
        ggml_type("q4_K").nbytes((384, 1))
    with pytest.raises(wn.OptionError):
        plan_layout(4, 0, None)
    (tmp_path / "taken").write_bytes(b"x")
    for path in (tmp_path / "taken", tmp_path):
        with pytest.raises(wn.OutputExistsError), atomic_write(path) as f:
            f.write(b"y")
    with pytest.raises(FileExistsError), atomic_write(tmp_path / "taken") as f:  # still a FileExistsError
        f.write(b"y")


def test_native_failures_come_from_one_table():
    """Every InferenceError the native layer raises goes through check_status and its
    STATUS table: no made-up codes, each (function, code) with its documented reason."""
    from whisperx_native._native import STATUS

    for name in ("_core.pyx", "vad.pxi"):
        text = (NATIVE_SOURCES / name).read_text()
        assert text.count("raise InferenceError(") == (1 if name == "_core.pyx" else 0), name  # check_status's own
        for where in re.findall(r'check_status\([^,]+, "(\w+)"\)', text):
            assert any(w == where for w, _ in STATUS), where
    assert {c for w, c in STATUS if w == "whisper_full"} == set(range(-10, 0))
    e = wn.InferenceError(-7, "whisper_lang_auto_detect")
    assert (e.code, e.where, e.reason) == (-7, "whisper_lang_auto_detect", "decoder failed")
    assert "decoder failed" in str(wn.InferenceError(-9))
