"""Per-call cancellation that works whenever it arrives: before, during or after the run."""

from __future__ import annotations

import threading

from .errors import Cancelled

__all__ = ["CancelToken"]


class CancelToken:
    """Pass to ``Model.transcribe(..., cancel_token=token)``; ``token.cancel()`` from any
    thread makes that call raise ``Cancelled``: at whisper.cpp's next abort check while
    it runs, or as soon as it starts if the cancel came first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._state = None
        self._generation = None  # the bound state's owner generation (State.claim)

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        with self._lock:  # never cancel a state already back in the pool: another call may own it
            self._cancelled = True
            if self._state is not None:
                self._state.cancel(self._generation)

    def check(self) -> None:
        """Raise ``Cancelled`` if cancel() was called (for callbacks of the run)."""
        if self._cancelled:
            raise Cancelled("transcription cancelled")

    def bind(self, state) -> None:
        """The call's native state while it holds one, None once it is back in the pool."""
        with self._lock:
            self._state = state
            self._generation = getattr(state, "generation", None) if state is not None else None
        if state is not None:
            self.check()
