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
    """whisper.cpp returned an error code from ``whisper_full``.

    ``code`` is whisper.cpp's return value and ``reason`` its documented meaning.
    """

    #: return codes of whisper_full_with_state (src/whisper.cpp, 1.8.5)
    REASONS = {
        -1: "VAD failed to filter the audio",
        -2: "failed to compute the log mel spectrogram",
        -3: "failed to auto-detect the language",
        -4: "too many decoders requested (beam size / best_of too large)",
        -5: "audio_ctx is larger than the model's audio context",
        -6: "encoder failed",
        -7: "failed to allocate the self-attention KV cache",
        -8: "decoder failed while processing the prompt",
        -9: "decoder failed",
    }

    def __init__(self, code: int, where: str = "whisper_full") -> None:
        self.code = int(code)
        self.reason = self.REASONS.get(self.code, "unknown error")
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
