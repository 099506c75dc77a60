"""Manager events: what happened to the served model, delivered to a callback and logging."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional

from ..errors import UsageError

log = logging.getLogger("whisperx_native.manager")

#: Every kind an Event can have (the Emitter refuses others: a listener can rely on the list).
EVENT_KINDS = ("loaded", "unloaded", "switched", "switch_failed", "downgraded", "upgraded",
               "over_budget", "load_failed")
#: The kinds logged as warnings (the others at INFO).
WARNING_KINDS = frozenset({"over_budget", "load_failed", "switch_failed", "downgraded"})


@dataclass(frozen=True)
class Event:
    kind: str
    model: Optional[str]
    detail: Dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "model": self.model, "time": self.time, **self.detail}


class Emitter:
    """Calls the user's callback (never letting it break the manager) and logs."""

    def __init__(self, callback: Optional[Callable[[Event], None]]) -> None:
        self.callback = callback

    def __call__(self, kind: str, model: Optional[str], **detail) -> Event:
        if kind not in EVENT_KINDS:
            raise UsageError(f"unknown manager event kind {kind!r}; one of {', '.join(EVENT_KINDS)}")
        event = Event(kind, model, detail)
        level = logging.WARNING if kind in WARNING_KINDS else logging.INFO
        log.log(level, "%s: %s %s", kind, model, detail or "")
        if self.callback is not None:
            try:
                self.callback(event)
            except Exception:  # a broken listener must not break transcription
                log.exception("event callback failed for %s", kind)
        return event
