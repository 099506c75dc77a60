"""One function per output format: ``Result`` → text.

SRT and WebVTT take openai-whisper's subtitle options, which need word times
(``word_timestamps=True``): ``max_line_width`` (characters; lines break between words),
``max_line_count`` (lines per cue; with ``max_line_width``, cues no longer follow segments
but fill up, and a pause over 3 s starts a new one), ``max_words_per_line`` (words per
cue, without ``max_line_width``) and ``highlight_words`` (karaoke: one cue per word with
the word underlined, ``<u>word</u>``, and the plain cue in the pauses between words).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple

from ..errors import OptionError, OptionTypeError
from ..result import Result, Segment

__all__ = ["FORMATS", "SubtitleOptions", "format_timestamp", "json_line", "render", "txt_line"]


class SubtitleOptions(NamedTuple):
    """openai-whisper's SubtitlesWriter options (see the module docstring)."""

    max_line_width: Optional[int] = None
    max_line_count: Optional[int] = None
    highlight_words: bool = False
    max_words_per_line: Optional[int] = None

    @property
    def by_words(self) -> bool:
        """True when the cues are made of word times."""
        return bool(self.highlight_words or self.max_line_width or self.max_line_count or self.max_words_per_line)

    def checked(self) -> "SubtitleOptions":
        for name in ("max_line_width", "max_line_count", "max_words_per_line"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise OptionTypeError(f"{name} must be an int or None, got {value!r}")
            if value < 1:
                raise OptionError(f"{name} must be at least 1, got {value}")
        if not isinstance(self.highlight_words, bool):
            raise OptionTypeError(f"highlight_words must be a bool, got {self.highlight_words!r}")
        return self


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


def _srt(result: Result, source: Optional[str], sub: SubtitleOptions = SubtitleOptions()) -> str:
    cues = _word_cues(result, sub, ",", lambda t: t) if sub.by_words else _cues(result, ",", lambda t: t)
    return "".join(f"{i}\n{a} --> {b}\n{text}\n\n" for i, (a, b, text) in enumerate(cues, 1))


def _vtt_escape(text: str) -> str:
    # WebVTT cue text: '&' and '<' start markup, and '-->' would end the cue.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _vtt(result: Result, source: Optional[str], sub: SubtitleOptions = SubtitleOptions()) -> str:
    cues = _word_cues(result, sub, ".", _vtt_escape) if sub.by_words else _cues(result, ".", _vtt_escape)
    return "WEBVTT\n\n" + "".join(f"{a} --> {b}\n{text}\n\n" for a, b, text in cues)


# ---------------------------------------------------------------------------- cues of words
def _spaced_words(seg: Segment) -> List[Tuple[float, float, str]]:
    """(start, end, text) of a segment's words, each text with the space before it that the
    segment's text has (none between the characters of Chinese or Japanese); a segment
    with text but no words (a caller's own) is one word, so no text is lost."""
    if not seg.words:
        text = _one_line(seg.text)
        return [(seg.start, seg.end, " " + text)] if text else []
    out = []
    pos = 0
    for w in seg.words:
        text = _one_line(w.text)
        j = seg.text.find(text, pos)
        space = j < 0 or (j > 0 and seg.text[j - 1].isspace())
        if j >= 0:
            pos = j + len(text)
        out.append((w.start, w.end, (" " if space else "") + text))
    return out


def _word_cues(result: Result, sub: SubtitleOptions, decimal: str,
               escape: Callable[[str], str]) -> Iterator[Tuple[str, str, str]]:
    """openai-whisper's SubtitlesWriter.iterate_result on word times: lines broken between
    words, cues as the options ask, karaoke cues with ``highlight_words``."""
    sub = sub.checked()
    segments = [s for s in result.segments if _one_line(s.text)]
    if segments and not any(s.words for s in segments):
        raise OptionError("max_line_width, max_line_count, max_words_per_line and highlight_words need word "
                          "times: transcribe with word_timestamps=True")
    preserve_segments = sub.max_line_count is None or sub.max_line_width is None
    width = sub.max_line_width or 1000
    per_cue = sub.max_words_per_line or 1000

    def subtitles() -> Iterator[List[List]]:
        line_len, line_count = 0, 1
        cue: List[List] = []  # [start, end, text (with its leading space or line break)]
        last = (segments[0].words[0].start if segments[0].words else segments[0].start) if segments else 0.0
        for seg in segments:
            words = _spaced_words(seg)
            for k in range(0, len(words), per_cue):
                for i, (start, end, text) in enumerate(words[k:k + per_cue]):
                    long_pause = not preserve_segments and start - last > 3.0
                    has_room = line_len + len(text) <= width
                    seg_break = i == 0 and len(cue) > 0 and preserve_segments
                    if line_len > 0 and has_room and not long_pause and not seg_break:
                        line_len += len(text)  # the line goes on
                    else:
                        text = text.strip()
                        if (cue and sub.max_line_count is not None
                                and (long_pause or line_count >= sub.max_line_count)) or seg_break:
                            yield cue  # a new cue
                            cue, line_count = [], 1
                        elif line_len > 0:  # a new line
                            line_count += 1
                            text = "\n" + text
                        line_len = len(text.strip())
                    cue.append([start, end, text])
                    last = start
        if cue:
            yield cue

    def stamp(t: float) -> str:
        return format_timestamp(t, decimal)

    for cue in subtitles():
        texts = [escape(text) for _start, _end, text in cue]
        whole = "".join(texts)
        if not sub.highlight_words:
            yield stamp(cue[0][0]), stamp(max(cue[-1][1], cue[0][0])), whole
            continue
        last = stamp(cue[0][0])
        for i, (start, end, _text) in enumerate(cue):
            a, b = stamp(start), stamp(max(end, start))
            if last != a:
                yield last, a, whole  # the pause before the word: no word underlined
            yield a, b, "".join(_underline(t) if j == i else t for j, t in enumerate(texts))
            last = b


def _underline(text: str) -> str:
    body = text.lstrip()
    return f"{text[:len(text) - len(body)]}<u>{body}</u>"


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
_SUBTITLES = ("srt", "vtt")

#: Output formats, in the order the CLI lists them.
FORMATS = tuple(_RENDERERS)


def render(result: Result, fmt: str, *, source: Optional[str] = None, max_line_width: Optional[int] = None,
           max_line_count: Optional[int] = None, highlight_words: bool = False,
           max_words_per_line: Optional[int] = None) -> str:
    """``result`` as the text of format ``fmt`` (one of ``FORMATS``).

    ``source`` (the input file) is recorded in JSON output. The subtitle options (SRT and
    WebVTT; the other formats ignore them) need a result with words: see the module."""
    try:
        renderer = _RENDERERS[fmt]
    except KeyError:
        raise OptionError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}") from None
    sub = SubtitleOptions(max_line_width, max_line_count, highlight_words, max_words_per_line).checked()
    if fmt in _SUBTITLES:
        return renderer(result, source, sub)
    return renderer(result, source)
