"""The compiled core (``_core``): whisper.cpp objects with an explicit lifecycle.

Import through whisperx_native; this package only re-exports the extension.
"""

try:
    from . import _core  # noqa: F401
except ModuleNotFoundError as exc:  # pragma: no cover - depends on how it was run
    if exc.name != f"{__name__}._core":
        raise
    raise ImportError(
        "whisperx_native's compiled extension is missing: this looks like the source checkout, "
        "not the installed package. Install it (pip install .) and run from another directory, "
        "or use an editable install (pip install -e .)."
    ) from None

from ._core import (  # noqa: E402 - after the check above
    ALIGNMENT_HEADS,
    KV_TYPES,
    MAX_DECODERS,
    SAMPLE_RATE,
    STATUS,
    Context,
    RawSegment,
    RawToken,
    State,
    VadContext,  # vad.pxi
    build_info,
    lang_id,
    languages,
    system_info,
    version,
)

__all__ = ["ALIGNMENT_HEADS", "KV_TYPES", "MAX_DECODERS", "SAMPLE_RATE", "STATUS", "Context", "RawSegment", "RawToken", "State",
           "VadContext", "build_info", "lang_id", "languages", "system_info", "version"]
