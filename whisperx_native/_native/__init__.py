"""The compiled core (``_core``): whisper.cpp objects with an explicit lifecycle.

Import through whisperx_native; this package only re-exports the extension.
"""

from ._core import (  # noqa: F401
    SAMPLE_RATE,
    MAX_DECODERS,
    Context,
    State,
    build_info,
    languages,
    lang_id,
    system_info,
    version,
)
