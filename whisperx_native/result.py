"""Plain result types: dataclasses that serialize to dicts / JSON."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional

__all__ = ["Token", "Segment", "Result"]


@dataclass(frozen=True)
class Token:
    """One decoded token. Times are seconds from the start of the audio."""

    id: int
    text: str
    p: float
    logprob: float
    start: float
    end: float


@dataclass(frozen=True)
class Segment:
    """A stretch of transcript with its time span (seconds)."""

    start: float
    end: float
    text: str
    no_speech_prob: float = 0.0
    speaker_turn_next: bool = False
    tokens: List[Token] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Result:
    """What ``Model.transcribe`` returns."""

    segments: List[Segment]
    language: Optional[str]
    language_probs: Optional[Dict[str, float]] = None
    timings: Dict[str, float] = field(default_factory=dict)
    model: Optional[str] = None

    @property
    def text(self) -> str:
        """The whole transcript, segments joined, outer white space removed."""
        return "".join(s.text for s in self.segments).strip()

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["text"] = self.text
        return d

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kw)
