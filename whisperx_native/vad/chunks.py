"""Offline voice-activity planning for file transcription.

whisper.cpp 1.8.5 applies VAD only in ``whisper_full()`` on a context's own state, not
in ``whisper_full_with_state()`` that our per-call states use, so it is done here with
our ``VadContext``. The speech segments Silero finds are packed into chunks of at most
one 30 s window (joined with a short gap of silence, as WhisperX and faster-whisper's
batched pipeline do); each chunk is transcribed on its own, and every time in the result
is mapped back to the original audio. Pure policy: no native state here.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..audio import SAMPLE_RATE

GAP_S = 0.1  # silence between joined segments, so words of two segments do not run together
#: Speech left after a chunk's last timestamp that is not worth another window (seconds).
WINDOW_MARGIN_S = 0.5
KEEP_PAUSE_S = 0.0  # pauses shorter than this stay in a chunk as they are


class TimeMap:
    """Piecewise-linear map from the joined (processed) audio back to the original.

    A time inside a piece maps into that piece; a time in the gap after it (or past the
    end) maps to the piece's end, never into audio that was not transcribed."""

    def __init__(self, pieces: Sequence[Tuple[float, float]], lengths: Optional[Sequence[float]] = None) -> None:
        # pieces: (processed start, original start) of each joined segment, in order
        self._proc = [p for p, _ in pieces]
        self._orig = [o for _, o in pieces]
        self._len = list(lengths) if lengths is not None else [float("inf")] * len(self._proc)

    def __call__(self, t: float) -> float:
        i = max(0, bisect.bisect_right(self._proc, t) - 1)
        return round(self._orig[i] + min(max(0.0, t - self._proc[i]), self._len[i]), 3)

    def start(self, t: float) -> float:
        """As a call, but a time in the gap after a piece maps to the start of the next
        piece: where something that begins in the silence between two pieces is heard."""
        i = max(0, bisect.bisect_right(self._proc, t) - 1)
        if t - self._proc[i] > self._len[i] and i + 1 < len(self._proc):
            return round(self._orig[i + 1], 3)
        return self(t)


@dataclass(frozen=True)
class Chunk:
    """Speech of one window: sample ranges of the original audio, in order."""
    pieces: Tuple[Tuple[int, int], ...]

    @property
    def start(self) -> float:
        return self.pieces[0][0] / SAMPLE_RATE

    @property
    def end(self) -> float:
        return self.pieces[-1][1] / SAMPLE_RATE

    @property
    def joined_seconds(self) -> float:
        """Length of the chunk's joined audio (pieces and the gaps between them)."""
        return sum(b - a for a, b in self.pieces) / SAMPLE_RATE + GAP_S * (len(self.pieces) - 1)

    def window_start_limit_ms(self, pad_s: float, margin_s: float = WINDOW_MARGIN_S) -> int:
        """Where, in the joined audio, a new 30-s window is no longer worth starting: the
        last piece's speech ends ``pad_s`` (the VAD's padding) before the chunk does, and
        less than ``margin_s`` of speech after the last timestamp is not worth a window.
        Measured on bench/corpus.py's long files: encoder passes 20 -> 12 and 18 -> 12,
        WER 18.9 -> 18.4 and 12.5 -> 12.2 % (re-encoded tails gave repeats, not words)."""
        return max(1, int(round((self.joined_seconds - pad_s - margin_s) * 1000)))

    def audio(self, samples: np.ndarray) -> Tuple[np.ndarray, TimeMap]:
        """The chunk's samples (pieces joined by GAP_S of silence) and the map back."""
        return join_pieces(samples, self.pieces)

    def time_map(self) -> TimeMap:
        """The map from the chunk's joined audio back to the original (as :meth:`audio`)."""
        return _time_map(self.pieces)


def plan_chunks(segments: Sequence[Tuple[float, float]], n_samples: int, max_s: float = 30.0,
                gap_s: float = GAP_S, keep_pause_s: float = KEEP_PAUSE_S) -> List[Chunk]:
    """Pack speech ``segments`` (seconds, in order) into chunks whose joined length is at
    most ``max_s``. Segments less than ``keep_pause_s`` apart are merged with the pause
    between them (whisper places segment ends at pauses); a segment longer than ``max_s``
    (the VAD was told to split at that length) is cut into equal parts."""
    spans: List[List[int]] = []
    keep = int(keep_pause_s * SAMPLE_RATE)
    for t0, t1 in segments:
        a, b = max(0, int(round(t0 * SAMPLE_RATE))), min(n_samples, int(round(t1 * SAMPLE_RATE)))
        if b <= a:
            continue
        if spans and a <= spans[-1][1] + keep and b - spans[-1][0] <= max_s * SAMPLE_RATE:
            spans[-1][1] = max(spans[-1][1], b)
        else:
            spans.append([a, b])
    limit = int(max_s * SAMPLE_RATE)
    gap = int(gap_s * SAMPLE_RATE)
    parts: List[Tuple[int, int]] = []
    for a, b in spans:
        n = -(-(b - a) // limit)
        step = -(-(b - a) // n)
        parts.extend((x, min(b, x + step)) for x in range(a, b, step))
    chunks: List[Chunk] = []
    cur: List[Tuple[int, int]] = []
    length = 0
    for a, b in parts:
        add = (b - a) + (gap if cur else 0)
        if cur and length + add > limit:
            chunks.append(Chunk(tuple(cur)))
            cur, length, add = [], 0, b - a
        cur.append((a, b))
        length += add
    if cur:
        chunks.append(Chunk(tuple(cur)))
    return chunks


#: How far before the end of the audio read so far a chunk's successor must end for the
#: chunk to count as settled (seconds): Silero's segmentation decides a segment's end at most
#: a pause, its padding and a merge gap after the speech. On bench/corpus.py's files and an
#: hour of speech, settled chunks were the final plan's with any margin from 0.5 s up.
SETTLE_S = 5.0


def settled(chunks: Sequence[Chunk], n_samples: int, margin_s: float = SETTLE_S) -> int:
    """How many leading ``chunks``, planned from the speech found in the first ``n_samples``
    of a file still being read, the rest of the file no longer changes: those whose
    successor ends ``margin_s`` before ``n_samples``. A caller starting on them checks them
    against the final plan (a segmentation that hung on longer than the margin)."""
    limit = n_samples - margin_s * SAMPLE_RATE
    k = 0
    while k + 1 < len(chunks) and chunks[k + 1].pieces[-1][1] <= limit:
        k += 1
    return k


def join_pieces(samples: np.ndarray, pieces: Sequence[Tuple[int, int]]) -> Tuple[np.ndarray, TimeMap]:
    """``samples[a:b]`` of each piece joined by GAP_S of silence, and the map back."""
    if not pieces:
        return np.zeros(0, dtype=np.float32), TimeMap([(0.0, 0.0)])
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), dtype=np.float32)
    parts: List[np.ndarray] = []
    for a, b in pieces:
        if parts:
            parts.append(gap)
        parts.append(samples[a:b])
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32), _time_map(pieces)


def _time_map(pieces: Sequence[Tuple[int, int]]) -> TimeMap:
    gap = int(GAP_S * SAMPLE_RATE)
    starts, lengths, pos = [], [], 0
    for a, b in pieces:
        starts.append((pos / SAMPLE_RATE, a / SAMPLE_RATE))
        lengths.append((b - a) / SAMPLE_RATE)
        pos += (b - a) + gap
    return TimeMap(starts, lengths)


def speech_only(samples: np.ndarray, segments: Sequence[Tuple[float, float]]) -> Tuple[np.ndarray, TimeMap]:
    """The speech ``segments`` (seconds) of ``samples`` joined, and the map back."""
    pieces = []
    for t0, t1 in segments:
        a, b = max(0, int(t0 * SAMPLE_RATE)), min(samples.size, int(t1 * SAMPLE_RATE))
        if b > a:
            pieces.append((a, b))
    return join_pieces(samples, pieces)


def remap_segment(raw, to_original: TimeMap):
    """A native raw segment (``_native.RawSegment``) with its and its tokens' times in the
    original audio. A token's DTW start in a gap between pieces goes to the next piece, its
    DTW end to the previous one (:meth:`TimeMap.start`)."""
    tokens = raw.tokens and [_remap_token(tok, to_original) for tok in raw.tokens]
    return raw._replace(t0=to_original(raw.t0), t1=to_original(raw.t1), tokens=tokens)


def _remap_token(tok, to_original: TimeMap):
    """A ``_native.RawToken`` with its token times and DTW times in the original audio (a
    negative token time, one whisper.cpp did not compute, stays as it is)."""
    return tok._replace(t0=tok.t0 if tok.t0 < 0 else to_original(tok.t0),
                        t1=tok.t1 if tok.t1 < 0 else to_original(tok.t1),
                        dtw_start=None if tok.dtw_start is None else to_original.start(tok.dtw_start),
                        dtw_end=None if tok.dtw_end is None else to_original(tok.dtw_end))
