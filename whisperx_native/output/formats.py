"""One function per output format: ``Result`` → text."""

from __future__ import annotations

import csv
import io
import json
from typing import Callable, Dict, Optional

from ..result import Result

__all__ = ["FORMATS", "format_timestamp", "json_line", "render", "txt_line"]


def format_timestamp(seconds: float, decimal: str = ".") -> str:
    """``HH:MM:SS.mmm`` (``decimal=","`` gives SRT's ``HH:MM:SS,mmm``); negative times clamp to 0."""
    ms = max(0, round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{decimal}{ms:03d}"


def _one_line(text: str) -> str:
    # A blank line ends a subtitle cue, a tab or newline breaks a TSV row.
    return " ".join(text.split())


def txt_line(text: str) -> str:
    """One segment's line of the txt format ("" for a segment with no text)."""
    line = _one_line(text)
    return f"{line}\n" if line else ""


def _txt(result: Result, source: Optional[str]) -> str:
    return "".join(txt_line(s.text) for s in result.segments)


def _cues(result: Result, decimal: str, escape: Callable[[str], str]):
    """(start, end, text) of each non-empty segment, end never before start."""
    for seg in result.segments:
        text = escape(_one_line(seg.text))
        if text:
            start = format_timestamp(seg.start, decimal)
            yield start, format_timestamp(max(seg.end, seg.start), decimal), text


def _srt(result: Result, source: Optional[str]) -> str:
    return "".join(f"{i}\n{a} --> {b}\n{text}\n\n"
                   for i, (a, b, text) in enumerate(_cues(result, ",", lambda t: t), 1))


def _vtt_escape(text: str) -> str:
    # WebVTT cue text: '&' and '<' start markup, and '-->' would end the cue.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _vtt(result: Result, source: Optional[str]) -> str:
    return "WEBVTT\n\n" + "".join(f"{a} --> {b}\n{text}\n\n" for a, b, text in _cues(result, ".", _vtt_escape))


def _tsv(result: Result, source: Optional[str]) -> str:
    # Integer milliseconds, as openai-whisper writes it: sorts and joins without float noise.
    rows = [f"{round(s.start * 1000)}\t{round(s.end * 1000)}\t{_one_line(s.text)}" for s in result.segments]
    return "start\tend\ttext\n" + "".join(row + "\n" for row in rows)


def _csv(result: Result, source: Optional[str]) -> str:
    # whisper-cli's -ocsv: integer milliseconds, the text quoted ("" inside).
    out = io.StringIO()
    w = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    w.writerow(["start", "end", "text"])
    for s in result.segments:
        w.writerow([round(s.start * 1000), round(s.end * 1000), _one_line(s.text)])
    return out.getvalue()


def _json_dict(result: Result, source: Optional[str]) -> dict:
    from .. import __version__, build_info

    d = result.to_dict()
    if source is not None:
        d = {"source": source, **d}
    d["build"] = {"whisperx_native": __version__, **build_info()}
    return d


def _json(result: Result, source: Optional[str]) -> str:
    return json.dumps(_json_dict(result, source), ensure_ascii=False, indent=2) + "\n"


def json_line(result: Result, *, source: Optional[str] = None) -> str:
    """The JSON document of ``result`` on one line (JSON Lines: one object per input file)."""
    return json.dumps(_json_dict(result, source), ensure_ascii=False) + "\n"


_RENDERERS: Dict[str, Callable[[Result, Optional[str]], str]] = {
    "txt": _txt, "srt": _srt, "vtt": _vtt, "json": _json, "tsv": _tsv, "csv": _csv,
}

#: Output formats, in the order the CLI lists them.
FORMATS = tuple(_RENDERERS)


def render(result: Result, fmt: str, *, source: Optional[str] = None) -> str:
    """``result`` as the text of format ``fmt`` (one of ``FORMATS``).

    ``source`` (the input file) is recorded in JSON output."""
    try:
        renderer = _RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}") from None
    return renderer(result, source)
