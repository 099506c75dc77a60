"""Plain result types: dataclasses that serialize to dicts / JSON."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional

__all__ = ["Token", "Word", "Segment", "Result"]


@dataclass(frozen=True)
class Token:
    """One decoded token. Times are seconds from the start of the audio.

    ``p`` is the token's probability, ``logprob`` its log-probability. ``start`` and
    ``end`` are whisper.cpp's token timestamps: real only when the run asked for
    ``token_timestamps=True`` (otherwise whisper.cpp's -0.01, which ``to_dict`` and
    JSON output give as ``None`` / ``null``). Special tokens (id ≥ the model's
    end-of-text id) have text like ``[_BEG_]`` or ``[_TT_123]``."""

    id: int
    text: str
    p: float
    logprob: float
    start: float
    end: float


@dataclass(frozen=True)
class Word:
    """A word with its time span (seconds) and probability (the mean of its tokens').

    Present when the run asked for ``word_timestamps=True`` (the CLI's
    ``--word-timestamps``): times from the alignment heads' cross-attention and DTW, as
    openai-whisper and faster-whisper compute them; words are in order, inside the audio,
    start ≤ end. ``token_timestamps=True`` alone gives words with whisper.cpp's token
    times instead (rougher). ``text`` has no surrounding white space; punctuation stays
    attached to its word (closing marks to the word before, opening ones to the word after).
    faster-whisper's name for the text, ``word``, works too (without its leading space)."""

    start: float
    end: float
    text: str
    probability: float

    @property
    def word(self) -> str:
        """``text``, by faster-whisper's name."""
        return self.text


@dataclass(frozen=True)
class Segment:
    """A stretch of transcript with its time span (seconds).

    With ``word_timestamps=True`` a segment spans its words: from the first word's start
    to the last word's end. ``tokens`` and ``words`` are empty for segments delivered
    while the run is still going (``segment_callback``, ``Model.transcribe_iter``)."""

    start: float
    end: float
    text: str
    no_speech_prob: float = 0.0
    speaker_turn_next: bool = False
    tokens: List[Token] = field(default_factory=list)
    words: List[Word] = field(default_factory=list)

    def to_dict(self) -> dict:
        """All fields as plain dicts, lists and numbers."""
        return dataclasses.asdict(self)


@dataclass
class Result:
    """What ``Model.transcribe`` returns.

    ``language`` is the code used (detected when the call asked for ``"auto"``);
    ``language_probs`` holds the detection's probabilities, best first (None when
    the language was given). ``timings`` are seconds of audio and milliseconds of
    work (see the README); ``model`` is the name or path the model was loaded by."""

    segments: List[Segment]
    language: Optional[str]
    language_probs: Optional[Dict[str, float]] = None
    timings: Dict[str, float] = field(default_factory=dict)
    model: Optional[str] = None

    @property
    def text(self) -> str:
        """The whole transcript, segments joined, outer white space removed."""
        return "".join(s.text for s in self.segments).strip()

    @property
    def language_probability(self) -> Optional[float]:
        """The detected language's probability, or None when the language was given."""
        if not self.language_probs:
            return None
        return self.language_probs.get(self.language)

    def to_dict(self) -> dict:
        """Fields, plus ``text`` and ``language_probability``, as plain JSON-ready values
        (token times that whisper.cpp did not compute are ``None``)."""
        d = dataclasses.asdict(self)
        for seg in d["segments"]:
            for tok in seg["tokens"]:  # whisper.cpp's "no time" (-0.01): null, not a time before the audio
                for key in ("start", "end"):
                    if tok[key] is not None and tok[key] < 0:
                        tok[key] = None
        d["text"] = self.text
        d["language_probability"] = self.language_probability
        return d

    def to_json(self, **kw) -> str:
        """``to_dict()`` as JSON text (UTF-8 kept as is); ``kw`` goes to ``json.dumps``."""
        return json.dumps(self.to_dict(), ensure_ascii=False, **kw)
