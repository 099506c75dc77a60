"""Per-call metrics and a rolling history with percentile summaries."""

from __future__ import annotations

import threading
from collections import deque
from typing import Deque, Dict, List

import numpy as np

_SUMMARY_KEYS = ("wall_s", "real_time_factor", "audio_seconds", "encode_ms", "decode_ms", "cpu_percent",
                 "peak_native_bytes")


class Metrics:
    """Thread-safe store of the last ``history`` calls (plain dicts)."""

    def __init__(self, history: int = 1000) -> None:
        self._lock = threading.Lock()
        self._calls: Deque[dict] = deque(maxlen=history)
        self.total_calls = 0
        self.total_audio_seconds = 0.0
        self.peak_native_bytes = 0

    def record(self, call: dict) -> None:
        with self._lock:
            self._calls.append(call)
            self.total_calls += 1
            self.total_audio_seconds += call.get("audio_seconds", 0.0)
            self.peak_native_bytes = max(self.peak_native_bytes, call.get("peak_native_bytes", 0))

    def history(self) -> List[dict]:
        with self._lock:
            return [dict(c) for c in self._calls]

    def summary(self) -> Dict[str, object]:
        """p50 / p95 of the main figures over the history, plus totals."""
        calls = self.history()
        out: Dict[str, object] = {"calls": self.total_calls, "audio_seconds": self.total_audio_seconds,
                                  "peak_native_bytes": self.peak_native_bytes}
        for key in _SUMMARY_KEYS:
            values = [c[key] for c in calls if key in c]
            if values:
                out[key] = {"p50": round(float(np.percentile(values, 50)), 3),  # 3 decimals: ms, s, ratios
                            "p95": round(float(np.percentile(values, 95)), 3), "max": round(float(max(values)), 3)}
        return out
