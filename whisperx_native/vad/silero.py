"""The Silero VAD model file: which one, checked before whisper.cpp reads it, loaded.

The package carries Silero v6.2.0 (MIT, 0.9 MB, from whisper.cpp's tree: the build
installs it beside this module); ``$WHISPERX_NATIVE_VAD_MODEL`` or a ``vad_model``
argument names another.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Union

from ..errors import ModelError
from ..models.vad_file import validate_vad
from ..validation import check_path

__all__ = ["VadModelInfo", "default_vad_model", "validate_vad_model", "load_vad"]

_ENV = "WHISPERX_NATIVE_VAD_MODEL"
_FILE = "silero-v6.2.0-ggml.bin"
#: Where the build installs the model: this package, and, in installs made before the
#: vad/ package existed (an editable install keeps it there until it is reinstalled),
#: the realtime package.
_INSTALLED_IN = ("whisperx_native.vad", "whisperx_native.realtime")


@dataclass(frozen=True)
class VadModelInfo:
    path: Path
    model_type: str        # "silero-16k"
    version: str           # "6.2.0"
    frame_samples: int     # samples per probability (512 at 16 kHz: 32 ms)


def default_vad_model() -> Path:
    """The Silero model to use when none is given: ``$WHISPERX_NATIVE_VAD_MODEL``, else the
    one installed with the package."""
    env = os.environ.get(_ENV)
    if env:
        return Path(env)
    for package in _INSTALLED_IN:
        candidate = resources.files(package) / _FILE
        if candidate.is_file():
            return Path(str(candidate))
    raise ModelError(f"no Silero VAD model found: pass vad_model=path/to/ggml-silero-v6.2.0.bin or set {_ENV} "
                     "(whisper.cpp's models/download-vad-model.sh fetches one)")


def validate_vad_model(path: Union[str, os.PathLike]) -> VadModelInfo:
    """Check a Silero ggml file completely — header, layer sizes, every tensor's name,
    shape, type and extent — before whisper.cpp reads it (it trusts its input)."""
    info = validate_vad(check_path(path, "vad_model"))
    return VadModelInfo(Path(info.path), info.model_type, info.version, info.n_window)


def load_vad(path: Union[str, os.PathLike, None] = None, n_threads: int = 1):
    """A validated native ``VadContext`` and its model info."""
    from .._native import VadContext  # the compiled extension: only when a model is loaded

    info = validate_vad_model(path if path is not None else default_vad_model())
    return VadContext(str(info.path), n_threads=n_threads), info
