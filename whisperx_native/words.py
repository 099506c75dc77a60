"""Words and their times from decoded tokens.

Two sources of times:

* ``word_timestamps=True``: the DTW times whisper.cpp computes from the cross-attention of
  the model's alignment heads (each token's ``dtw_start``; ``dtw_end`` is where the next
  text token of its 30 s window starts, or the window's end-of-text jump). Tokens become
  words as openai-whisper's ``whisper/timing.py`` groups them: pieces that decode to whole
  characters, a new word at a leading space or at punctuation (every piece a word in
  languages written without spaces), the long-word heuristics of ``add_word_timestamps``
  (median and maximum word duration of the window), punctuation merged into its
  neighbour (``merge_punctuations`` with the same two sets), each word's probability the
  mean of its tokens'. :func:`finish` then makes the promises callers rely on: every word
  inside the audio, start ≤ end, words in order and not overlapping across segments,
  and each segment spanning its words (so it does not start in the silence before them);
  given the audio, it first moves the word boundaries next to a pause onto the pause's
  edges (:func:`pauses` on a 10 ms loudness envelope, :func:`snap_to_pauses`), which DTW
  alone places anywhere near the pause.
* ``token_timestamps=True`` alone: whisper.cpp's heuristic token times, grouped as before
  (:class:`TokenTimeWords`).

Pure Python on the native layer's raw tuples; no native state here.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import string
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ._native import RawSegment, RawToken  # the records of the native boundary, declared once
from .result import Segment, Word

__all__ = ["APPEND_PUNCTUATIONS", "NO_SPACE_LANGUAGES", "PREPEND_PUNCTUATIONS", "DtwWords", "RawToken",
           "Loudness", "TokenTimeWords", "as_segment", "as_token", "finish", "pauses", "snap_to_pauses"]

#: openai-whisper's (and faster-whisper's) defaults: merged into the word after / before them.
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
#: A word this ends a sentence: the word after a pause may not stretch back over the pause.
SENTENCE_END_MARKS = ".。!！?？"
#: Languages written without spaces between words: every whole character (or token) is a word.
NO_SPACE_LANGUAGES = frozenset({"zh", "yue", "ja", "th", "lo", "my", "bo"})


def as_token(tok) -> RawToken:
    """``tok`` as the native record (a plain tuple of its 8 fields is read into one)."""
    return tok if isinstance(tok, RawToken) else RawToken._make(tok)


def as_segment(raw) -> RawSegment:
    """``raw`` as the native record (a plain tuple of its 6 fields is read into one)."""
    return raw if isinstance(raw, RawSegment) else RawSegment._make(raw)


# ----------------------------------------------------------------------------- DTW words
@dataclasses.dataclass
class _Timing:
    """A word while it is being built (openai-whisper's WordTiming, plus its segment)."""
    text: str
    tokens: list
    start: float
    end: float
    probability: float
    segment: int  # index of the segment whose token starts the word


class DtwWords:
    """Words with DTW times for the raw segments of one ``State.full`` run.

    ``eot``: the model's end-of-text id (every id from it on is special). ``language``:
    the code decoded, which decides how tokens split into words."""

    def __init__(self, eot: int, language: Optional[str], prepend: str = PREPEND_PUNCTUATIONS,
                 append: str = APPEND_PUNCTUATIONS) -> None:
        self.eot = eot
        self.no_spaces = language in NO_SPACE_LANGUAGES
        self.prepend = prepend
        self.append = append

    def build(self, raws: Sequence, last_speech: float = 0.0) -> List[Tuple[float, float, List[Word]]]:
        """(start, end, words) of each raw segment, in order. ``last_speech``: where speech
        was last heard before these segments (openai-whisper's last_speech_timestamp)."""
        raws = [as_segment(raw) for raw in raws]
        out: List[Tuple[float, float, List[Word]]] = [(raw.t0, raw.t1, []) for raw in raws]
        for group in self._windows(raws):
            last_speech = self._window(raws, group, out, last_speech)
        return out

    # -- one window -------------------------------------------------------------
    def _windows(self, raws) -> List[List[Tuple[int, List[RawToken]]]]:
        """Segments grouped by the 30 s window they were decoded in: (index, text tokens).

        Inside a window the last text token of a segment ends where the first of the next
        segment starts (the native contract for ``dtw_end``); a new window breaks that chain."""
        groups: List[List[Tuple[int, List[RawToken]]]] = []
        last_end = None
        for i, raw in enumerate(raws):
            toks = [t for t in map(as_token, raw.tokens or ()) if t.id < self.eot]
            if not toks:
                continue
            first = toks[0].dtw_start
            if not groups or first is None or last_end is None or first != last_end:
                groups.append([])
            groups[-1].append((i, toks))
            last_end = toks[-1].dtw_end
        return groups

    def _window(self, raws, group, out, last_speech: float) -> float:
        alignment: List[_Timing] = []
        for seg_index, toks in group:
            seg_t0, seg_t1 = raws[seg_index][0], raws[seg_index][1]
            for text, word_toks in self._split(toks):
                start, end = _span(word_toks, seg_t0, seg_t1)
                probability = float(np.mean([t.p for t in word_toks]))
                alignment.append(_Timing(text, word_toks, start, end, probability, seg_index))
        if not alignment:
            return last_speech

        durations = np.array([t.end - t.start for t in alignment])
        durations = durations[durations.nonzero()]
        median = min(0.7, float(np.median(durations))) if durations.size else 0.0
        longest = median * 2
        if durations.size:
            # A word at a sentence boundary may not be longer than twice the median: the
            # end mark does not stretch over the pause after it, nor the word after it
            # back over the pause before it.
            for i in range(1, len(alignment)):
                w = alignment[i]
                if w.end - w.start > longest:
                    if w.text in SENTENCE_END_MARKS:
                        w.end = w.start + longest
                    elif alignment[i - 1].text in SENTENCE_END_MARKS:
                        w.start = w.end - longest
        _merge_punctuations(alignment, self.prepend, self.append)

        by_segment: dict = {}
        for w in alignment:
            if w.text:
                by_segment.setdefault(w.segment, []).append(w)
        for seg_index, _toks in group:
            words = by_segment.get(seg_index)
            if not words:
                continue
            seg_start, seg_end = raws[seg_index][0], raws[seg_index][1]
            first = words[0]
            # The first word after a pause: not longer than the longest allowed (nor the first
            # two words together twice that), cut at its end.
            if first.end - last_speech > median * 4 and (
                    first.end - first.start > longest
                    or (len(words) > 1 and words[1].end - first.start > longest * 2)):
                if len(words) > 1 and words[1].end - words[1].start > longest:
                    boundary = max(words[1].end / 2, words[1].end - longest)
                    first.end = words[1].start = boundary
                first.start = max(0.0, first.end - longest)
            # The segment's own timestamp where the first word is too long, else the word's.
            if seg_start < first.end and seg_start - 0.5 > first.start:
                first.start = max(0.0, min(first.end - median, seg_start))
            else:
                seg_start = first.start
            last = words[-1]
            if seg_end > last.start and seg_end + 0.5 < last.end:
                last.end = max(last.start + median, seg_end)
            else:
                seg_end = last.end
            last_speech = seg_end
            out[seg_index] = (seg_start, seg_end,
                              [Word(w.start, w.end, _clean(w.text), w.probability) for w in words])
        return last_speech

    # -- tokens to words ----------------------------------------------------------
    def _split(self, toks: List[RawToken]) -> List[Tuple[str, List[RawToken]]]:
        """openai-whisper's split_to_word_tokens on the window's text tokens."""
        pieces = _unicode_pieces(toks)
        if self.no_spaces:
            return pieces
        words: List[Tuple[str, List[RawToken]]] = []
        for text, piece in pieces:
            # str-in-str, as openai-whisper tests it: a white-space-only piece counts too
            if not words or text.startswith(" ") or text.strip() in string.punctuation:
                words.append((text, list(piece)))
            else:
                words[-1] = (words[-1][0] + text, words[-1][1] + piece)
        return words


def _unicode_pieces(toks: List[RawToken]) -> List[Tuple[str, List[RawToken]]]:
    """Tokens in runs that decode to whole characters (a character's bytes may be split
    over tokens); bytes that are invalid in themselves end a run with U+FFFD."""
    pieces: List[Tuple[str, List[RawToken]]] = []
    cur: List[RawToken] = []
    for tok in toks:
        cur.append(tok)
        data = b"".join(t.text for t in cur)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.reason == "unexpected end of data" and len(data) - exc.start < 4:
                continue  # a character continues in the next token
            text = data.decode("utf-8", "replace")
        pieces.append((text, cur))
        cur = []
    if cur:
        pieces.append((b"".join(t.text for t in cur).decode("utf-8", "replace"), cur))
    return pieces


def _span(toks: List[RawToken], seg_t0: float, seg_t1: float) -> Tuple[float, float]:
    """DTW start of the word's first token and end of its last; where the native layer
    computed none, the token's own times, else the segment's."""
    start, end = toks[0].dtw_start, toks[-1].dtw_end
    if start is None:
        start = toks[0].t0 if toks[0].t0 >= 0 else seg_t0
    if end is None:
        end = toks[-1].t1 if toks[-1].t1 >= 0 else seg_t1
    return float(start), float(end)


def _merge_punctuations(alignment: List[_Timing], prepended: str, appended: str) -> None:
    """openai-whisper's merge_punctuations: an opening mark (a word of its own starting
    with a space) joins the word after it, a closing mark the word before it. The word
    that takes a mark keeps its times and probability; the mark's entry is emptied."""
    i, j = len(alignment) - 2, len(alignment) - 1
    while i >= 0:
        before, after = alignment[i], alignment[j]
        if before.text.startswith(" ") and before.text.strip() in prepended:
            after.text = before.text + after.text
            after.tokens = before.tokens + after.tokens
            before.text, before.tokens = "", []
        else:
            j = i
        i -= 1
    i, j = 0, 1
    while j < len(alignment):
        before, after = alignment[i], alignment[j]
        if not before.text.endswith(" ") and after.text in appended:
            before.text = before.text + after.text
            before.tokens = before.tokens + after.tokens
            after.text, after.tokens = "", []
        else:
            i = j
        j += 1


def _clean(text: str) -> str:
    return " ".join(text.split())


# ----------------------------------------------------------------------------- promises
def finish(segments: List[Segment], audio_s: float, samples: Optional[np.ndarray] = None, *,
           gaps: Optional[Sequence[Tuple[float, float]]] = None) -> List[Segment]:
    """The segments with their words inside [0, ``audio_s``], each start ≤ its end, in
    order without overlap (a word that starts before the previous one ends cuts that one
    short; one that starts before the previous one starts follows it), times rounded to
    the millisecond; a segment with words spans exactly its first to its last word.

    With ``samples`` (the audio, 16 kHz), or ``gaps`` (its :func:`pauses`, e.g. of a
    :class:`Loudness` fed while a long file was decoded), word boundaries next to a pause
    are first moved onto the pause's edges (:func:`snap_to_pauses`)."""
    limit = math.floor(max(0.0, audio_s) * 1000) / 1000
    out: List[Segment] = []
    prev: Optional[list] = None  # [start, end] of the last word placed (mutable: may be cut)
    placed: List[Tuple[Segment, List[list]]] = []
    for seg in segments:
        spans: List[list] = []
        for w in seg.words:
            s = min(max(_ms(w.start), 0.0), limit)
            e = min(max(_ms(w.end), 0.0), limit)
            if prev is not None and s < prev[1]:
                if s >= prev[0]:
                    prev[1] = s
                else:
                    s = prev[1]
            e = max(e, s)
            prev = [s, e, w]
            spans.append(prev)
        placed.append((seg, spans))
    if samples is not None or gaps is not None:
        snap_to_pauses([span for _seg, spans in placed for span in spans], samples, gaps=gaps)
    for seg, spans in placed:
        if not spans:
            out.append(seg)
            continue
        words = [Word(s, e, w.text, w.probability) for s, e, w in spans]
        out.append(dataclasses.replace(seg, start=words[0].start, end=words[-1].end, words=words))
    return out


def _ms(t: float) -> float:
    return round(float(t), 3)


# ----------------------------------------------------------------------------- pauses
#: Frames of the loudness envelope (10 ms at 16 kHz).
_HOP = 160
#: A pause: at least this long below the speech threshold (a stop consonant's closure is shorter).
MIN_PAUSE_S = 0.15
#: A word boundary this close to a pause (seconds) is moved onto it.
SNAP_S = 0.35
#: Quieter than this (dBFS, 10 ms RMS) is silence whatever the recording's level.
SILENCE_DB = -65.0


def pauses(samples: np.ndarray, min_pause_s: float = MIN_PAUSE_S) -> List[Tuple[float, float]]:
    """(start, end) seconds of the pauses in ``samples`` (16 kHz): stretches of at least
    ``min_pause_s`` whose 10 ms loudness stays below the speech threshold; the silence
    before the audio's first sound and after its last count at any length.

    The threshold follows the recording: 10 dB above the noise floor (the quietest frame
    within 0.2 s, taken on the louder side: a floor of digital silence next to a stretch
    of background noise does not make the noise speech), at least 35 dB and at most 20 dB
    under the speech level (the loudest frame within ±5 s); below -65 dBFS always. Noise
    less than 20 dB under the speech is speech here: such a recording has no pauses to snap to.

    :class:`Loudness` gives the same pauses for samples that come block by block."""
    x = np.asarray(samples, dtype=np.float32)
    n = x.size // _HOP
    return _pauses_of(_loudness_db(x[:n * _HOP]), x.size, min_pause_s)


def _loudness_db(x: np.ndarray) -> np.ndarray:
    """The 10 ms loudness (dBFS, float32) of ``x``, a whole number of frames: each frame's
    number depends on its own samples only, so frames computed block by block are the same."""
    n = x.size // _HOP
    return np.maximum(10 * np.log10(np.square(x.reshape(n, _HOP)).mean(axis=1) + 1e-10), -90.0)


class Loudness:
    """The loudness envelope of :func:`pauses` gathered block by block (a long file is never
    held whole: 4 bytes per 10 ms, 1.4 MB an hour): ``add`` the 16 kHz samples in order,
    then ``pauses()`` is exactly ``pauses(all the samples)``."""

    def __init__(self) -> None:
        self._db: List[np.ndarray] = []
        self._rest = np.zeros(0, np.float32)
        self.n_samples = 0

    def add(self, block: np.ndarray) -> None:
        x = np.asarray(block, dtype=np.float32)
        self.n_samples += x.size
        if self._rest.size:
            x = np.concatenate([self._rest, x])
        whole = x.size // _HOP * _HOP
        if whole:
            self._db.append(_loudness_db(x[:whole]))
        self._rest = x[whole:].copy()

    def pauses(self, min_pause_s: float = MIN_PAUSE_S) -> List[Tuple[float, float]]:
        db = np.concatenate(self._db) if self._db else np.zeros(0, np.float32)
        return _pauses_of(db, self.n_samples, min_pause_s)


def _pauses_of(db: np.ndarray, n_samples: int, min_pause_s: float) -> List[Tuple[float, float]]:
    """:func:`pauses` of the loudness ``db`` of ``n_samples`` samples (their whole frames)."""
    n = db.size
    if n == 0:
        return [(0.0, n_samples / 16000)]
    w = 20  # frames: 0.2 s
    left = _running(np.pad(db, (w, 0), mode="edge"), w + 1, np.minimum)
    right = _running(np.pad(db, (0, w), mode="edge"), w + 1, np.minimum)
    level = _running(np.pad(db, 500, mode="edge"), 1001, np.maximum)
    threshold = np.minimum(np.maximum(np.maximum(left, right) + 10.0, level - 35.0), level - 20.0)
    quiet = (db < threshold) | (db < SILENCE_DB)  # far from any speech the level is the silence's own
    loud = np.diff(np.concatenate([[0], (~quiet).astype(np.int8), [0]]))
    for first, end in zip(np.flatnonzero(loud == 1), np.flatnonzero(loud == -1)):
        if end - first == 1 and first > 0 and end < n:  # a click of one frame is no speech
            quiet[first:end] = True
    edges = np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]]))
    out: List[Tuple[float, float]] = []
    for first, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):  # quiet frames [first, end)
        if first == 0 or end == n or end - first >= min_pause_s * 100:
            out.append((int(first) * _HOP / 16000, int(end) * _HOP / 16000))
    return out


def _running(x: np.ndarray, k: int, op) -> np.ndarray:
    """``op.reduce(x[i:i + k])`` for every i (van Herk / Gil-Werman: O(n) time and memory;
    ``op`` is np.minimum or np.maximum)."""
    n = x.size
    fill = np.inf if op is np.minimum else -np.inf
    blocks = np.concatenate([x, np.full(-n % k, fill, dtype=x.dtype)]).reshape(-1, k)
    prefix = op.accumulate(blocks, axis=1).ravel()
    suffix = op.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].ravel()
    i = np.arange(n - k + 1)
    return op(suffix[i], prefix[i + k - 1])


def snap_to_pauses(spans: List[list], samples: Optional[np.ndarray], snap_s: float = SNAP_S, *,
                   gaps: Optional[Sequence[Tuple[float, float]]] = None) -> None:
    """Move word boundaries next to a pause onto its edges, in place (``spans``: [start,
    end, ...] of the words, in order and not overlapping).

    DTW puts the boundary between two words with a pause between them anywhere near the
    pause: the word before is stretched over the silence, the word after starts in it, or
    late. Each pause goes to the nearest word boundary (the stretch between one word's end
    and the next one's start; before the first word and after the last one too) within
    ``snap_s``; the word before then ends where the pause starts, the word after starts
    where it ends (after the last word: within ``snap_s`` of the end it would have at the
    median word length, if DTW left it shorter). A word is never turned inside out, and
    only boundaries next to a pause move. ``gaps``: the pauses of the audio when they are known already (``samples`` unused)."""
    if not spans:
        return
    n = len(spans)
    # boundary k: between spans[k-1] and spans[k] (k = 0: before the first; k = n: after the last)
    lows = [spans[0][0]] + [spans[k - 1][1] for k in range(1, n + 1)]
    highs = [spans[k][0] for k in range(n)] + [spans[-1][1]]
    # DTW can squeeze the last words into a few frames (the end of text takes the rest of the
    # window's sound): the last word reaches at least a typical word's length for its pause.
    durations = sorted(e - s for s, e, *_ in spans if e > s)
    if durations:
        highs[n] = max(highs[n], spans[-1][0] + durations[len(durations) // 2])
    claims: dict = {}  # boundary -> the pauses nearest to it
    for g0, g1 in (gaps if gaps is not None else pauses(samples)):
        best, best_d = None, snap_s
        for k in range(bisect.bisect_left(highs, g0 - snap_s), min(n + 1, bisect.bisect_right(lows, g1 + snap_s))):
            d = max(0.0, lows[k] - g1, g0 - highs[k])  # 0: the pause meets the boundary
            if d < best_d or (best is None and d == best_d):
                best, best_d = k, d
        if best is not None:
            claims.setdefault(best, []).append((g0, g1))
    for k, near in sorted(claims.items()):
        before = spans[k - 1] if k > 0 else None
        after = spans[k] if k < n else None
        # Several pauses at one boundary (a breath or a click between them): the word before
        # ends at the first one, the word after starts at the end of the last one it outlasts.
        ends = [g0 for g0, _g1 in near if before is None or g0 > before[0]]
        starts = [g1 for _g0, g1 in near if after is None or g1 < after[1]]
        if before is not None and ends:
            before[1] = min(ends) if starts or after is None else min(min(ends), after[0])
        if after is not None and starts:
            after[0] = max(starts) if before is None else max(max(starts), before[1])


# ----------------------------------------------------------------------------- token times
class TokenTimeWords:
    """Words from one segment's raw tokens with whisper.cpp's token times
    (``token_timestamps=True`` without ``word_timestamps``).

    A token whose text starts with a space starts a new word; others (word pieces,
    punctuation) extend the current one. Bytes are joined before decoding, so a
    character split over two tokens comes out whole. ``per_token``: a language without
    spaces, where every whole character is a word."""

    def __init__(self, eot: int, per_token: bool) -> None:
        self.eot = eot
        self.per_token = per_token

    def build(self, toks) -> List[Word]:
        words: List[Word] = []
        parts: List[RawToken] = []  # tokens of the word being built
        for tok in map(as_token, toks):
            if tok.id >= self.eot:
                continue
            if parts and (tok.text.startswith(b" ") or (self.per_token and _complete_utf8(parts))):
                self._flush(parts, words)
                parts = []
            parts.append(tok)
        self._flush(parts, words)
        return words

    @staticmethod
    def _flush(parts: List[RawToken], words: List[Word]) -> None:
        text = b"".join(t.text for t in parts).decode("utf-8", "replace").strip()
        if text:
            probability = sum(t.p for t in parts) / len(parts)
            words.append(Word(round(parts[0].t0, 3), round(parts[-1].t1, 3), text, probability))


def _complete_utf8(parts: List[RawToken]) -> bool:
    try:
        b"".join(t.text for t in parts).decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False
