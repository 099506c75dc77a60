"""Voice-activity detection for streams: Silero (whisper.cpp's VAD runtime, loaded by
:mod:`.silero`) plus the policy that turns per-frame speech probabilities into utterances.

``VadContext`` (the Cython layer) runs the network; :class:`StreamingVad` feeds it
whole 32 ms frames as audio arrives (the LSTM state carries over between calls),
applies hysteresis (start above ``threshold``, end after ``min_silence_ms`` below
``threshold - 0.15``, as Silero's own ``get_speech_timestamps`` does) and reports
where speech starts and ends in absolute samples.

Adaptive endpointing (``min_silence_long_ms``): the longer the speech segment has
run, the shorter the pause that ends it. Up to ``adaptive_from_s`` seconds of
speech a pause must last ``min_silence_ms``; from ``adaptive_to_s`` on,
``min_silence_long_ms`` is enough; in between the requirement slides linearly. So a
speaker who hardly pauses is still cut at the gaps between sentences (which Silero
sees as a few hundred ms below threshold) instead of running on to a forced cut,
while short utterances keep the long, safe endpoint.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import numpy as np

from ..audio import SAMPLE_RATE
from .silero import load_vad

__all__ = ["StreamingVad", "VadBoundary"]


@dataclass(frozen=True)
class VadBoundary:
    """Speech started (``kind="start"``) or ended (``"end"``) at absolute sample ``sample``."""
    kind: str
    sample: int


class StreamingVad:
    """Per-frame speech probabilities and utterance boundaries for a live stream.

    Feed it audio with :meth:`feed` (absolute start index + samples); it returns
    the boundaries found. Speech start/end are padded by ``speech_pad_ms`` so
    whisper hears the onset and the last consonant. The most recent
    ``history_s`` seconds of probabilities are kept for :meth:`quietest`.

    ``min_silence_long_ms`` (None: off, every pause must last ``min_silence_ms``)
    turns on adaptive endpointing, see the module docstring: the pause that ends a
    segment which has run ``adaptive_to_s`` seconds or more needs only
    ``min_silence_long_ms`` (never more than ``min_silence_ms``). A consumer that cuts a segment itself (a forced cut
    inside speech) calls :meth:`split_at` so the length restarts from the cut.
    """

    def __init__(self, model: Union[str, os.PathLike, None] = None, *, threshold: float = 0.5,
                 min_silence_ms: int = 500, speech_pad_ms: int = 200, n_threads: int = 1,
                 history_s: float = 120.0, min_silence_long_ms: Optional[int] = None,
                 adaptive_from_s: float = 3.0, adaptive_to_s: float = 8.0) -> None:
        from ..errors import OptionError
        from ..validation import check_float

        threshold = check_float(threshold, "threshold", 0.0, 1.0)
        min_silence_ms = check_float(min_silence_ms, "min_silence_ms", 0.0, 600_000.0)
        speech_pad_ms = check_float(speech_pad_ms, "speech_pad_ms", 0.0, 600_000.0)
        history_s = check_float(history_s, "history_s", 0.0, 86_400.0)
        adaptive_from_s = check_float(adaptive_from_s, "adaptive_from_s", 0.0, 86_400.0)
        adaptive_to_s = check_float(adaptive_to_s, "adaptive_to_s", 0.0, 86_400.0)
        if min_silence_long_ms is not None:
            min_silence_long_ms = check_float(min_silence_long_ms, "min_silence_long_ms", 0.0, 600_000.0)
            if min_silence_long_ms <= 0:
                raise OptionError("min_silence_long_ms must be > 0 (or None)")
        if not 0 <= adaptive_from_s <= adaptive_to_s:
            raise OptionError("need 0 <= adaptive_from_s <= adaptive_to_s")
        self.ctx, self.info = load_vad(model, n_threads)
        self.frame = self.info.frame_samples
        self.threshold = float(threshold)
        self.neg_threshold = max(0.01, self.threshold - 0.15)
        self.min_silence_frames = self._frames(min_silence_ms)
        self.min_silence_long_frames = self._frames(min_silence_long_ms if min_silence_long_ms is not None
                                                    else min_silence_ms)
        self.adaptive_from = int(adaptive_from_s * SAMPLE_RATE)
        self.adaptive_to = int(adaptive_to_s * SAMPLE_RATE)
        self._seg_start: Optional[int] = None     # onset of the speech segment (or the last split_at)
        self.pad = int(speech_pad_ms / 1000 * SAMPLE_RATE)
        self._pending = np.zeros(0, np.float32)  # samples of an incomplete frame
        self._pos: Optional[int] = None          # absolute index of the next sample expected
        self._probs: deque = deque(maxlen=max(1, int(history_s * SAMPLE_RATE / self.frame)))  # (frame start, p)
        self.in_speech = False
        self._silent_since: Optional[int] = None  # first quiet frame inside speech (absolute sample)
        self._resumed: Optional[Tuple[int, int]] = None  # (quiet from, speech again from): the last pause
        self._n_silent = 0
        self.speech_frames = 0

    def _frames(self, ms: float) -> int:
        return max(1, int(round(ms / 1000 * SAMPLE_RATE / self.frame)))

    def close(self) -> None:
        self.ctx.close()

    def __enter__(self) -> "StreamingVad":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def position(self) -> Optional[int]:
        """Absolute sample index up to which audio has been classified."""
        return None if self._pos is None else self._pos - self._pending.size

    def feed(self, start: int, samples: np.ndarray) -> List[VadBoundary]:
        """Classify ``samples`` (16 kHz float32) starting at absolute index ``start``.

        A gap (``start`` after the previous end: audio was dropped) restarts the
        network's state and ends any speech in progress at the gap."""
        out: List[VadBoundary] = []
        if self._pos is not None and start != self._pos:
            if self.in_speech:
                out.append(self._end(self.position))
            self._pending = np.zeros(0, np.float32)
            self.ctx.reset()
        self._pos = start + samples.size
        buf = np.concatenate([self._pending, samples]) if self._pending.size else samples
        n_whole = (buf.size // self.frame) * self.frame
        self._pending = np.array(buf[n_whole:], np.float32)
        if n_whole == 0:
            return out
        first = self._pos - self._pending.size - n_whole  # absolute index of buf[0]
        probs = self.ctx.detect(np.ascontiguousarray(buf[:n_whole], np.float32), reset=False)
        for k, p in enumerate(probs):
            at = first + k * self.frame
            self._probs.append((at, float(p)))
            b = self._step(at, float(p))
            if b is not None:
                out.append(b)
        return out

    def silence_frames_needed(self, speech_samples: int) -> int:
        """Quiet frames that end a segment which has run ``speech_samples`` before the pause."""
        short, long_ = self.min_silence_frames, self.min_silence_long_frames
        if long_ >= short or speech_samples <= self.adaptive_from:
            return short
        if speech_samples >= self.adaptive_to:
            return long_
        f = (speech_samples - self.adaptive_from) / (self.adaptive_to - self.adaptive_from)
        return int(round(short + f * (long_ - short)))

    def split_at(self, sample: int) -> None:
        """The consumer cut the current segment at ``sample``: measure its length from there.
        (A cut before the current segment's onset, e.g. of one that already ended, changes nothing.)"""
        if self.in_speech and self._seg_start is not None and sample > self._seg_start:
            self._seg_start = sample

    def _step(self, at: int, p: float) -> Optional[VadBoundary]:
        if not self.in_speech:
            if p >= self.threshold:
                self.in_speech = True
                self._silent_since, self._n_silent, self._resumed = None, 0, None
                self.speech_frames = 1
                self._seg_start = at
                return VadBoundary("start", max(0, at - self.pad))
            return None
        self.speech_frames += 1
        if p >= self.threshold:
            if self._silent_since is not None:
                self._resumed = (self._silent_since, at)
            self._silent_since, self._n_silent = None, 0
        elif p < self.neg_threshold:
            if self._silent_since is None:
                self._silent_since = at
            self._n_silent += 1
            if self._n_silent >= self.silence_frames_needed(self._silent_since - self._seg_start):
                return self._end(min(self._silent_since + self.pad, at + self.frame))
        return None

    def end_if_closed(self, min_speech: int) -> Optional[int]:
        """Where the speech in progress ends if the stream closes now (samples; None: not in
        speech, or its speech runs to the end): where the pause going on began, or where the
        last one did when less than ``min_speech`` samples of speech came after it (a click or
        a breath as the recording stops, not a word), plus the padding."""
        if not self.in_speech:
            return None
        if self._silent_since is not None:
            return self._silent_since + self.pad
        if self._resumed is not None and self.position - self._resumed[1] < min_speech:
            return self._resumed[0] + self.pad
        return None

    def _end(self, sample: int) -> VadBoundary:
        self.in_speech = False
        self._silent_since, self._n_silent, self._seg_start, self._resumed = None, 0, None, None
        return VadBoundary("end", sample)

    def quietest(self, lo: int, hi: int, span: int = 5) -> Optional[int]:
        """Middle of the quietest stretch of ``span`` frames (160 ms) within [lo, hi), or None.

        A stretch, not a frame: the closure before a plosive ("plat|form") is one or
        two quiet frames inside a word; a gap between words lasts longer."""
        frames = [(at, p) for at, p in self._probs if lo <= at and at + self.frame <= hi]
        if not frames:
            return None
        probs = np.array([p for _, p in frames])
        k = min(span, probs.size)
        mean = np.convolve(probs, np.ones(k) / k, mode="valid")
        i = int(np.argmin(mean)) + k // 2
        return frames[i][0] + self.frame // 2

    def probabilities(self) -> List[Tuple[int, float]]:
        """The kept (frame start sample, speech probability) pairs, oldest first."""
        return list(self._probs)
