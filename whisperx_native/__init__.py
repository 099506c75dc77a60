"""whisperx_native: Whisper speech recognition through a Cython extension on whisper.cpp.

    import whisperx_native as wn
    with wn.Model("base") as model:            # a name, or a path to a ggml file
        result = model.transcribe("speech.mp3")
    print(result.text)

Importing the package is cheap: numpy and the native extension load on first use
of a name that needs them.
"""

from __future__ import annotations

import importlib
import logging

from .errors import (
    AudioError,
    BusyError,
    Cancelled,
    ClosedError,
    InferenceError,
    MemoryBudgetError,
    ModelError,
    NativeError,
    OptionError,
    OptionTypeError,
    OutputExistsError,
    UsageError,
    WhisperError,
)

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

# name → module that defines it, imported on first access (PEP 562).
_LAZY = {
    "Model": ".model",
    "Transcription": ".model",
    "Result": ".result",
    "Segment": ".result",
    "Token": ".result",
    "Word": ".result",
    "WhisperManager": ".manager",
    "StreamingTranscriber": ".realtime",
    "RingBuffer": ".realtime",
    "CancelToken": ".cancel",
    "DecodeOptions": ".options",
    "PRESETS": ".options",
    "convert_ct2": ".convert",
    "as_samples": ".audio",
    "load_audio": ".audio",
    "read_wav": ".audio",
    "SAMPLE_RATE": ".audio",
}

__all__ = sorted(list(_LAZY) + [
    "AudioError", "BusyError", "Cancelled", "ClosedError", "InferenceError", "MemoryBudgetError", "ModelError",
    "NativeError", "OptionError", "OptionTypeError", "OutputExistsError", "UsageError", "WhisperError",
    "build_info", "__version__",
])


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__


def build_info() -> dict:
    """whisper.cpp version, compiler, CPU features and GPU backends of this build."""
    from ._native import build_info as _bi

    return _bi()
