"""The exception tree of whisperx_native.

Every error the package raises on purpose derives from :class:`WhisperError`,
and each leaf also subclasses the builtin a caller would naturally catch
(``ValueError`` for bad input, ``RuntimeError`` for native failures), so code
written against the builtins keeps working.
"""

from __future__ import annotations

__all__ = [
    "WhisperError",
    "ModelError",
    "AudioError",
    "Cancelled",
    "NativeError",
    "InferenceError",
    "ClosedError",
    "BusyError",
    "MemoryBudgetError",
    "OptionError",
    "OptionTypeError",
    "UsageError",
    "OutputExistsError",
]


class WhisperError(Exception):
    """Root of every error raised by whisperx_native."""


class ModelError(WhisperError, ValueError):
    """A model file is missing, malformed, or could not be loaded."""


class AudioError(WhisperError, ValueError):
    """Audio input is unusable: wrong shape, dtype, rate, NaN/Inf, empty, too long."""


class Cancelled(WhisperError):
    """A transcription was stopped by :meth:`cancel` before it finished."""


class ClosedError(WhisperError, RuntimeError):
    """A model or state was used after ``close()``."""


class BusyError(WhisperError, RuntimeError):
    """A state is already running a transcription in another thread."""


class NativeError(WhisperError, RuntimeError):
    """whisper.cpp or ggml failed, or returned something it should not have."""


class InferenceError(NativeError):
    """A whisper.cpp call failed.

    ``where`` is the native function, ``code`` what it returned and ``reason`` its
    documented meaning: one table of native failures, ``whisperx_native._native.STATUS``,
    maps them (``_native._core.check_status`` raises this).
    """

    def __init__(self, code: int, where: str = "whisper_full", reason: "str | None" = None) -> None:
        self.code = int(code)
        self.where = where
        if reason is None:
            from ._native import STATUS  # the table lives beside the calls it describes

            reason = STATUS.get((where, self.code), "unknown error")
        self.reason = reason
        super().__init__(f"{where} failed with code {self.code}: {self.reason}")


class MemoryBudgetError(WhisperError, MemoryError):
    """A model (and its per-call buffers) would not fit the configured memory budget."""


class OptionError(WhisperError, ValueError):
    """An option or argument has a value the package cannot use: out of range, not
    finite, a string that cannot be encoded, an unknown name."""


class OptionTypeError(OptionError, TypeError):
    """An option or argument has the wrong Python type (``beam_size="5"``, ``language=123``)."""


class UsageError(WhisperError, RuntimeError):
    """An object was used in a way its API does not allow (e.g. ``__init__`` called twice)."""


class OutputExistsError(WhisperError, FileExistsError):
    """An output path is taken (a file, or a directory where a file would go) and
    overwriting was not asked for."""
