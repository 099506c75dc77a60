"""Transcript files: txt, SRT, WebVTT, JSON, TSV and CSV from a ``Result``.

    from whisperx_native.output import render, write
    print(render(result, "srt"))
    write(result, "vtt", "talk.vtt")

The subtitle writers are a few lines each, on purpose: subtitle libraries are made
for editing styled subtitles and rewrite text on the way (pysubs2, for one, treats
``{...}`` as an ASS override tag and drops it), while a transcript must come out
exactly as decoded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from ..result import Result
from .formats import FORMATS, format_timestamp, json_line, render, txt_line

__all__ = ["FORMATS", "format_timestamp", "json_line", "render", "txt_line", "write"]


def write(result: Result, fmt: str, path: Union[str, os.PathLike], *, source: Optional[str] = None,
          **subtitle_options) -> Path:
    """Write ``result`` as ``fmt`` to ``path`` (UTF-8, all or nothing: a crash leaves no half file).
    ``subtitle_options``: those of :func:`render` (``max_line_width``, ``highlight_words`` ...)."""
    from .._fsutil import atomic_write

    text = render(result, fmt, source=source, **subtitle_options)
    with atomic_write(path, overwrite=True) as f:
        f.write(text.encode("utf-8"))
    return Path(path)
