"""Offline voice-activity filtering for file transcription.

whisper.cpp 1.8.5 applies VAD only in ``whisper_full()`` on a context's own state, not
in ``whisper_full_with_state()`` that our per-call states use, so it is done here with
our ``VadContext``: the speech segments are joined (with a short gap of silence between
them), whisper transcribes only that, and every time in the result is mapped back to
the original audio.
"""

from __future__ import annotations

import bisect
from typing import List, Sequence, Tuple

import numpy as np

from .audio import SAMPLE_RATE

GAP_S = 0.1  # silence between joined segments, so words of two segments do not run together


class TimeMap:
    """Piecewise-linear map from the joined (processed) audio back to the original."""

    def __init__(self, pieces: Sequence[Tuple[float, float]]) -> None:
        # pieces: (processed start, original start) of each joined segment, in order
        self._proc = [p for p, _ in pieces]
        self._orig = [o for _, o in pieces]

    def __call__(self, t: float) -> float:
        i = max(0, bisect.bisect_right(self._proc, t) - 1)
        return round(self._orig[i] + (t - self._proc[i]), 3)


def speech_only(samples: np.ndarray, segments: Sequence[Tuple[float, float]]) -> Tuple[np.ndarray, TimeMap]:
    """The speech ``segments`` (seconds) of ``samples`` joined, and the map back."""
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), dtype=np.float32)
    parts: List[np.ndarray] = []
    pieces, pos = [], 0
    for t0, t1 in segments:
        a, b = max(0, int(t0 * SAMPLE_RATE)), min(samples.size, int(t1 * SAMPLE_RATE))
        if b <= a:
            continue
        if parts:
            parts.append(gap)
            pos += gap.size
        pieces.append((pos / SAMPLE_RATE, a / SAMPLE_RATE))
        parts.append(samples[a:b])
        pos += b - a
    if not parts:
        return np.zeros(0, dtype=np.float32), TimeMap([(0.0, 0.0)])
    return np.concatenate(parts), TimeMap(pieces)


def remap_segment(raw, to_original: TimeMap):
    """A native raw segment tuple with its (and its tokens') times in the original audio."""
    t0, t1, text, nsp, turn, toks = raw
    if toks:
        toks = [(tid, tb, p, plog, to_original(a), to_original(b), dtw) for (tid, tb, p, plog, a, b, dtw) in toks]
    return (to_original(t0), to_original(t1), text, nsp, turn, toks)
