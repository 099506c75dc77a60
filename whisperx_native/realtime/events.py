"""What a streaming transcription reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Tuple

from ..result import Segment

__all__ = ["StreamEvent", "PARTIAL", "FINAL", "DEGRADED", "RECOVERED", "OVERFLOW"]

PARTIAL = "partial"      # text of the utterance in progress; a later partial or final replaces it
FINAL = "final"          # committed text: never repeated nor rewritten later
DEGRADED = "degraded"    # fell behind real time: switched to a cheaper setting
RECOVERED = "recovered"  # caught up again: a cheaper setting was lifted
OVERFLOW = "overflow"    # the ring buffer dropped audio the transcriber had not read


@dataclass(frozen=True)
class StreamEvent:
    """One event of :class:`~whisperx_native.realtime.StreamingTranscriber`.

    ``start``/``end`` are seconds since the stream started (absolute, across
    dropped audio). ``utterance`` numbers the speech stretch the text belongs to;
    finals of one utterance come in time order and each final's ``start`` is at or
    after the previous final's ``end``. ``behind_s`` is how far the transcriber
    was behind the audio when it emitted the event, ``wall_time`` the clock value
    then. ``detail`` carries the specifics of status events (level, model, ...).
    """

    kind: str
    text: str = ""
    start: float = 0.0
    end: float = 0.0
    utterance: int = 0
    segments: Tuple[Segment, ...] = ()
    behind_s: float = 0.0
    wall_time: float = 0.0
    detail: dict = field(default_factory=dict)

    @property
    def is_final(self) -> bool:
        return self.kind == FINAL
