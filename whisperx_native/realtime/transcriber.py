"""Streaming transcription: audio from a ring buffer in, partial and final text out.

How text is committed, so that words are neither lost nor repeated at seams:

* Audio is cut into *utterances* and every sample belongs to at most one
  utterance; an utterance is transcribed as a whole once it ends, and that text
  is final. No audio is transcribed into two finals, so no seam can repeat words.
* With VAD (default), an utterance is a stretch of speech: it starts where Silero
  hears speech (padded back a little) and ends at the next pause. Silence between
  utterances is never sent to whisper: no hallucinated text on silence, and no
  compute spent on it.
* Adaptive endpointing: how long that pause must be depends on how long the
  utterance has run. Up to ``adaptive_from_s`` (3 s) of speech it takes
  ``min_silence_ms`` (500 ms), so short utterances are not chopped at commas; the
  requirement then slides down linearly to ``min_silence_long_ms`` (200 ms) at
  ``adaptive_to_s`` (8 s) and stays there. A speaker who hardly pauses is thus cut
  at the next gap between sentences or clauses, which Silero hears as a few
  hundred ms of non-speech, instead of at the ``max_utterance_s`` cap: the final
  text of a long stretch comes a fraction of a second after its sentence ends, not
  up to ``max_utterance_s`` later. The cut is a VAD end like any other (in a real
  gap, no audio shared with the next utterance), so the invariant above holds.
  ``min_silence_long_ms=None`` turns this off (every pause needs ``min_silence_ms``).
* An utterance longer than ``max_utterance_s`` (someone who never pauses even
  briefly, or the sliding window mode without VAD) is cut at the *quietest*
  stretch of its last 40 %: the lowest speech probability (or energy), i.e. a
  breath or a word gap, not the middle of a word. This is the last resort.
* While an utterance runs, it is re-transcribed every ``step_s`` seconds of new
  audio for *partial* results (skipped when the transcriber is behind, or when
  the speaker has just paused and the final is about to come).

A final is decoded as the long-form path decodes one of its VAD chunks (speech that
ends with the VAD's padding): ``speech_only`` (a window whose text closes on a single
timestamp resumes there instead of skipping the rest as silence: tiny.en did that
after the first sentence of a two-sentence utterance, and the second was lost) and
``window_start_limit_ms`` (no window starts on the trailing padding alone).

Context: a final hears the speech before its utterance, as a long file's chunk does. Its
window starts at the earliest of the committed utterances just before it that fit with it in
29 s; their final text is the decoder's prefix (``DecodeOptions.prefix``, whisper's own
``<|t0|> text <|t1|>`` form, vendor/patches/0019), so the decoder continues the transcript
after it instead of transcribing that audio again. Only the audio after the last final
becomes text. ``context=False`` turns this off. A final without such context (the first,
or one after lost audio) of an utterance shorter than 8 s is prompted with the last ~120
characters of committed text instead; decoded alone, a short utterance read "And so am I
fellow Americans". Longer ones are not prompted: with a prompt tiny.en often ended the
decode after their first sentence with no closing timestamp, losing the rest. Each run
starts without whisper.cpp's own carried context (``no_context``): the whole committed text
as a prompt made tiny.en loop on it ("And so my fellow Americans." x 20), and a pooled
state would otherwise carry the text of the last partial into the next run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import time
from collections import deque
from typing import Callable, Deque, Iterator, List, Optional, Tuple, Union

import numpy as np

from ..audio import SAMPLE_RATE
from ..options import WINDOW_SECONDS, audio_ctx_for
from ..result import Segment
from .events import DEGRADED, FINAL, OVERFLOW, PARTIAL, RECOVERED, StreamEvent
from .governor import LatencyGovernor
from .ringbuffer import RingBuffer
from ..vad import Chunk, StreamingVad

__all__ = ["StreamingTranscriber"]

#: Committed text a final is prompted with: about one sentence, the last final's.
PROMPT_CHARS = 120
#: Finals of utterances this long or longer are not prompted (see _transcribe).
PROMPT_BELOW_S = 8.0
#: A final's window: its utterance and, ahead of it, the committed utterances that fit with
#: it in this much audio (their final text the decoder's prefix, see _context).
CONTEXT_WINDOW_S = WINDOW_SECONDS - 1.0

log = logging.getLogger("whisperx_native.realtime")

_FRAME = 512                      # analysis frame for the energy fallback (= Silero's 32 ms)
_NOISE_ONLY = re.compile(r"^\s*([\[(*♪].*[\])*♪]|[\W_]*)\s*$")  # "[BLANK_AUDIO]", "(music)", "..."
_WORD = re.compile(r"[\w']+")
#: A final's segment of at most this many words that repeats the words just before it is
#: dropped (see _without_repeats).
MAX_REPEAT_WORDS = 5
#: The committed text _without_repeats compares with: its last MAX_REPEAT_WORDS words.
REPEAT_TAIL_CHARS = 1000


def _words(text: str) -> List[str]:
    return _WORD.findall(text.lower())


def _without_repeats(segs: List[Segment], before: str) -> List[Segment]:
    """``segs`` less each short segment whose words are the very words before it: whisper
    ends a segment on a timestamp before the speech does and then transcribes the rest again
    ("... for your country." "country."). whisper_streaming drops the same overlap."""
    seen, out = _words(before), []
    for seg in segs:
        w = _words(seg.text)
        if 0 < len(w) <= MAX_REPEAT_WORDS and seen[-len(w):] == w:
            log.debug("dropped a final's segment repeating the words before it: %r", seg.text)
            continue
        out.append(seg)
        seen += w
    return out


@dataclasses.dataclass(frozen=True)
class _Committed:
    """An utterance whose final was given: its first sample and its final segments."""
    start: int
    segments: Tuple[Segment, ...]


class _Audio:
    """The samples from ``start`` (absolute index) on, in an amortised growable array."""

    def __init__(self) -> None:
        self.data = np.zeros(SAMPLE_RATE * 8, np.float32)
        self.start = 0
        self.n = 0

    @property
    def end(self) -> int:
        return self.start + self.n

    def append(self, start: int, x: np.ndarray) -> None:
        if start != self.end:  # a gap (dropped audio): what came before is no longer contiguous
            self.start, self.n = start, 0
        if self.n + x.size > self.data.size:
            grown = np.zeros(max(self.data.size * 2, self.n + x.size), np.float32)
            grown[:self.n] = self.data[:self.n]
            self.data = grown
        self.data[self.n:self.n + x.size] = x
        self.n += x.size

    def drop_before(self, index: int) -> None:
        k = min(max(0, index - self.start), self.n)
        if k:
            self.data[:self.n - k] = self.data[k:self.n]
            self.start += k
            self.n -= k

    def slice(self, lo: int, hi: int) -> np.ndarray:
        lo, hi = max(lo, self.start), min(hi, self.end)
        return self.data[lo - self.start:hi - self.start].copy() if hi > lo else np.zeros(0, np.float32)

    def quietest(self, lo: int, hi: int) -> Optional[int]:
        """Middle of the lowest-energy 160 ms within [lo, hi) (used without VAD)."""
        x = self.slice(lo, hi)
        n = x.size // _FRAME
        if n == 0:
            return None
        energy = (x[:n * _FRAME].reshape(n, _FRAME) ** 2).mean(axis=1)
        k = min(5, n)  # a 160 ms stretch, not one frame (see StreamingVad.quietest)
        i = int(np.argmin(np.convolve(energy, np.ones(k) / k, mode="valid"))) + k // 2
        return max(lo, self.start) + i * _FRAME + _FRAME // 2


class StreamingTranscriber:
    """Transcribe a live stream from a :class:`RingBuffer`.

    ``engine`` is a :class:`~whisperx_native.Model` or a
    :class:`~whisperx_native.WhisperManager` (which adds the smaller-model
    downgrade). ``vad=True`` cuts utterances with Silero (``vad_model`` defaults to
    :func:`~whisperx_native.vad.default_vad_model`); ``vad=False`` runs a
    sliding window of ``max_utterance_s`` seconds over all audio, re-transcribed
    every ``step_s`` for partials.

    Endpointing (with VAD; see the module docstring): an utterance ends after a
    pause of ``min_silence_ms`` if it has run at most ``adaptive_from_s`` seconds,
    of ``min_silence_long_ms`` if it has run ``adaptive_to_s`` seconds or more
    (linear in between; ``None`` = always ``min_silence_ms``), and is cut inside
    speech at ``max_utterance_s`` at the latest. A :class:`StreamingVad` passed as
    ``vad`` brings its own endpointing settings and these keywords are ignored.
    ``speech_pad_ms`` pads utterances into the surrounding silence;
    ``min_speech_ms`` is the shortest utterance sent to whisper.

    ``latency_budget_s`` is the backlog above which
    cheaper settings kick in (None: never, e.g. for files fed faster than real
    time). Partials are decoded with ``preset`` (greedy, an encoder context trimmed to
    the utterance); finals with ``final_preset`` (None: the file decoder, beam search
    with fallback on the full context, as a long file's chunks are), unless the latency
    governor has stepped down. ``condition_on_previous_text`` prompts the final of an
    utterance shorter than ``PROMPT_BELOW_S`` with the last ``PROMPT_CHARS`` of committed
    text (see the module docstring; False: no prompt). Other keywords (``language``, ``n_threads`` ...) go to
    ``transcribe``.

    Iterate :meth:`events` in a consumer thread, or call :meth:`start` to run in a
    background thread with a callback. ``text`` is the committed transcript.
    """

    def __init__(self, engine, ring: RingBuffer, *, vad: Union[bool, StreamingVad] = True,
                 vad_model: Union[str, os.PathLike, None] = None, vad_threshold: float = 0.5,
                 min_silence_ms: int = 500, min_silence_long_ms: Optional[int] = 200,
                 adaptive_from_s: float = 3.0, adaptive_to_s: float = 8.0,
                 speech_pad_ms: int = 200, min_speech_ms: int = 200,
                 step_s: float = 1.0, max_utterance_s: float = 20.0, partials: bool = True,
                 latency_budget_s: Optional[float] = 1.5,
                 language: Optional[str] = "en", preset: str = "fast", final_preset: Optional[str] = None,
                 condition_on_previous_text: bool = True, context: bool = True,
                 clock: Callable[[], float] = time.monotonic, **options) -> None:
        from ..errors import OptionError
        from ..validation import check_float

        max_utterance_s = check_float(max_utterance_s, "max_utterance_s", 0.0, WINDOW_SECONDS)
        if max_utterance_s <= 1.0:
            raise OptionError(f"max_utterance_s must be in (1, {WINDOW_SECONDS:g}]")
        step_s = check_float(step_s, "step_s", 0.01, 3600.0)  # a step of 0 samples would spin
        min_speech_ms = check_float(min_speech_ms, "min_speech_ms", 0.0, 600_000.0)
        if latency_budget_s is not None:
            latency_budget_s = check_float(latency_budget_s, "latency_budget_s", 0.0, 1e6)
        vad_threshold = check_float(vad_threshold, "vad_threshold", 0.0, 1.0)
        min_silence_ms = check_float(min_silence_ms, "min_silence_ms", 0.0, 600_000.0)
        speech_pad_ms = check_float(speech_pad_ms, "speech_pad_ms", 0.0, 600_000.0)
        adaptive_from_s = check_float(adaptive_from_s, "adaptive_from_s", 0.0, 86_400.0)
        adaptive_to_s = check_float(adaptive_to_s, "adaptive_to_s", 0.0, 86_400.0)
        if min_silence_long_ms is not None:
            min_silence_long_ms = check_float(min_silence_long_ms, "min_silence_long_ms", 0.0, 600_000.0)
        if not callable(clock):
            raise OptionError("clock must be callable")
        self.engine = engine
        self.ring = ring
        if isinstance(vad, StreamingVad):
            self.vad: Optional[StreamingVad] = vad
            self._own_vad = False
        elif vad:
            self.vad = StreamingVad(vad_model, threshold=vad_threshold, min_silence_ms=min_silence_ms,
                                    speech_pad_ms=speech_pad_ms, min_silence_long_ms=min_silence_long_ms,
                                    adaptive_from_s=adaptive_from_s, adaptive_to_s=adaptive_to_s)
            self._own_vad = True
        else:
            self.vad, self._own_vad = None, False
        self.step = int(step_s * SAMPLE_RATE)
        self.max_len = int(max_utterance_s * SAMPLE_RATE)
        self.min_speech = int(min_speech_ms / 1000 * SAMPLE_RATE)
        self.pad = int(speech_pad_ms / 1000 * SAMPLE_RATE)
        self.partials = partials
        self.clock = clock
        # no_context: whisper.cpp would otherwise carry the text of the previous run on a
        # pooled state (a partial!) into this one.
        self.options = dict({"no_context": True}, **options, language=language, preset=preset)
        # Finals: the file decoder (an utterance is what a long file's chunk is: beam search,
        # fallback, the full encoder context), unless the latency governor asks for less.
        self.final_options = dict({"no_context": True}, **options, language=language, preset=final_preset)
        self.condition_on_previous_text = bool(condition_on_previous_text)
        self.governor = LatencyGovernor(latency_budget_s, clock=clock)
        self.finals: List[StreamEvent] = []
        self.stats = {"transcriptions": 0, "partials": 0, "finals": 0, "busy_s": 0.0,
                      "audio_s": 0.0, "wall_s": 0.0, "dropped_s": 0.0}
        self._audio = _Audio()
        self._utt_start: Optional[int] = None   # absolute start of the utterance in progress
        self._utterance = 0
        self._last_partial = 0                  # audio position of the last partial run
        self._last_partial_text = ""
        self._committed_end = 0                 # end (samples) of the last final
        self._history: Deque[_Committed] = deque()  # committed utterances, the context of finals
        self.context = bool(context)
        self._dropped_seen = 0
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._error: Optional[BaseException] = None

    # ------------------------------------------------------------------ public
    @property
    def text(self) -> str:
        """The committed (final) transcript so far."""
        return " ".join(e.text for e in self.finals)

    def _text_tail(self, n_chars: int) -> str:
        """``self.text[-n_chars:]`` from the last finals only: read at every final, the whole
        transcript would cost a join (and a word scan) that grows with the stream."""
        parts, size = [], 0
        for e in reversed(self.finals):
            parts.append(e.text)
            size += len(e.text) + 1
            if size > n_chars:
                break
        return " ".join(reversed(parts))[-n_chars:]

    @property
    def level(self) -> int:
        """Current economy level (0 = normal; see governor.py)."""
        return self.governor.level

    def events(self) -> Iterator[StreamEvent]:
        """Run until the ring is closed and drained (or :meth:`stop`), yielding events."""
        t_start = self.clock()
        try:
            while not self._stop.is_set():
                self.ring.wait(_FRAME, timeout=0.05)
                start, x = self.ring.read()
                if x.size:
                    yield from self._take(start, x)
                if self.ring.exhausted:
                    if self._utt_start is not None:
                        yield from self._finalize(self._closing_end())
                    break
                if x.size and self.ring.available() < _FRAME:
                    yield from self._maybe_partial()
        finally:
            self.stats["wall_s"] += self.clock() - t_start
            if self._own_vad and self.vad is not None:
                self.vad.close()

    def run(self) -> List[StreamEvent]:
        """Consume the whole stream; returns every event."""
        return list(self.events())

    def start(self, on_event: Callable[[StreamEvent], None]) -> "StreamingTranscriber":
        """Run :meth:`events` in a background thread, calling ``on_event`` for each."""
        def work():
            try:
                for ev in self.events():
                    on_event(ev)
            except BaseException as exc:  # kept for join()
                self._error = exc
                log.exception("streaming transcription failed")

        self._thread = threading.Thread(target=work, name="whisperx-stream", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the current piece of work (text of the open utterance is not committed)."""
        self._stop.set()

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait for :meth:`start`'s thread; re-raises what it died of."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    # ------------------------------------------------------------------ segmentation
    def _take(self, start: int, x: np.ndarray) -> Iterator[StreamEvent]:
        self.stats["audio_s"] += x.size / SAMPLE_RATE
        if start != self._audio.end and self._audio.n:
            # Audio was dropped: the utterance in progress ends at the gap.
            yield self._status(OVERFLOW, lost_s=round((start - self._audio.end) / SAMPLE_RATE, 3),
                               ring=self.ring.stats())
            if self._utt_start is not None:
                yield from self._finalize(self._audio.end)
        self._audio.append(start, x)
        if self.vad is not None:
            for b in self.vad.feed(start, x):
                if b.kind == "start":
                    self._begin(max(b.sample, self._committed_end, self._audio.start))
                elif self._utt_start is not None:
                    yield from self._cut_long(b.sample)
                    yield from self._finalize(b.sample)
        elif self._utt_start is None:
            self._begin(max(start, self._committed_end))
        yield from self._cut_long(self._audio.end)
        if self._utt_start is None:  # between utterances keep just enough for the padded onset
            # (the VAD has given every boundary up to its position: the next onset comes after it)
            if self.vad is not None and self.vad.position is not None:
                self._forget_before(self.vad.position - self.pad - _FRAME)
            self._audio.drop_before(self._keep_from())

    def _cut_long(self, upto: int) -> Iterator[StreamEvent]:
        """Nobody pauses for ever: while the utterance reaching ``upto`` is longer than
        the window, commit it up to the quietest frame of the window's last 40 %.
        Depends only on the audio, not on how it was chunked."""
        while self._utt_start is not None and upto - self._utt_start > self.max_len:
            lo = self._utt_start + int(self.max_len * 0.6)
            hi = self._utt_start + self.max_len
            cut = self.vad.quietest(lo, hi) if self.vad is not None else None
            if cut is None:
                cut = self._audio.quietest(lo, hi) or hi
            if self.vad is not None:
                self.vad.split_at(cut)  # the adaptive endpoint measures the new utterance from the cut
            yield from self._finalize(cut, reopen=True)

    def _closing_end(self) -> int:
        """End of the utterance still open when the stream closes: where its speech ends, as
        a pause would have ended it, not after a click or breath in the last samples (a final
        with context read the 0.4 s after jfk's last word as "Okay.")."""
        end = self.vad.end_if_closed(self.min_speech) if self.vad is not None else None
        return self._audio.end if end is None else max(self._utt_start, min(end, self._audio.end))

    def _keep_from(self) -> int:
        """Oldest sample a future utterance (or the context of its final) may start at: the
        next VAD onset is at or after the VAD's position, and is padded back by ``pad``."""
        pos = self.vad.position if self.vad is not None else None
        keep = (self._audio.end if pos is None else pos) - self.pad - _FRAME
        if self._history:  # what is kept depends on the audio only, not on when it was read
            keep = min(keep, self._history[0].start)
        return keep

    def _forget_before(self, first_start: int) -> None:
        """No utterance to come starts before ``first_start``: committed utterances that began
        a context window before it can no longer be context (a long silence keeps nothing)."""
        while self._history and first_start - self._history[0].start > CONTEXT_WINDOW_S * SAMPLE_RATE:
            self._history.popleft()

    def _context(self, start: int, end: int):
        """(first sample, prefix) of the final of the utterance [start, end): the committed
        utterances just before it that fit with it in CONTEXT_WINDOW_S, with their final text
        timed from the first of them (DecodeOptions.prefix). As a long file's chunk gives its
        later speech the earlier one, heard and already transcribed.

        Fast replay, streamed minus offline WER pooled over long_speech and bench/corpus.py
        long_a..long_d: +2.86 points without context, +1.71 with this window (+1.15 with 20 s,
        +2.86 with 10 s, before context stopped at utterances without text); on long_e and
        long_f, made afterwards: +0.74 -> -0.82."""
        picked: List[_Committed] = []
        for u in reversed(self._history):
            if (u.start < self._audio.start or end - u.start > CONTEXT_WINDOW_S * SAMPLE_RATE
                    or not u.segments):
                break  # audio lost in between (an overflow), no room left, or audio without text
            picked.append(u)
        if not picked:
            return start, None
        first = picked[-1].start
        t0 = first / SAMPLE_RATE
        prefix, last = [], 0.0
        for u in reversed(picked):
            for seg in u.segments:
                a = max(last, round(seg.start - t0, 2))
                b = max(a, round(seg.end - t0, 2))
                prefix.append((a, b, seg.text))
                last = b
        return first, tuple(prefix)

    def _begin(self, at: int) -> None:
        self._utt_start = at
        self._utterance += 1
        self._last_partial = at
        self._last_partial_text = ""

    # ------------------------------------------------------------------ whisper runs
    def _transcribe(self, audio: np.ndarray, tight: bool, final: bool = False, prefix=None) -> List[Segment]:
        if final and not tight:
            opts = dict(self.final_options)
            if prefix:
                # The committed utterances before this one: their audio ahead of its own (see
                # _finalize) and their final text as the decoder's prefix, the context a long
                # file's chunk gives its later speech (figures: _context).
                opts["prefix"] = prefix
            if self.vad is not None:
                # A VAD utterance is what a long file's chunk is, and is decoded as one: known
                # speech, so a window whose text ends at a single timestamp resumes there instead
                # of skipping the rest as silence (the skip dropped whole sentences of two-sentence
                # utterances), but no window starts on the trailing padding (it decoded to junk).
                opts.setdefault("speech_only", True)
                opts.setdefault("window_start_limit_ms", Chunk(((0, audio.size),)).window_start_limit_ms(
                    self.vad.pad / SAMPLE_RATE))
            if (self.condition_on_previous_text and "initial_prompt" not in opts and self.finals
                    and not prefix and audio.size < PROMPT_BELOW_S * SAMPLE_RATE):
                # No context (the first final, or one after lost audio): the text before the
                # utterance, as a chunk's earlier speech is to its later speech. Fast replay,
                # streamed WER (offline default): long_speech 8.71 -> 8.36 %
                # (6.62), bench/corpus.py long_a 21.86 -> 21.23 (18.87), long_b 19.94 -> 17.81
                # (13.09), long_c 21.85 -> 20.92 (18.46), long_d 20.40 -> 19.78 (17.45). 400
                # characters on every final made long_speech 10.8 % and long_b 21.3 %: whole
                # sentences lost after the first one of long utterances.
                opts["initial_prompt"] = self._text_tail(PROMPT_CHARS)
        else:
            opts = dict(self.options)
            opts.setdefault("audio_ctx", audio_ctx_for(audio.size / SAMPLE_RATE, headroom=0 if tight else 64))
        t0 = time.perf_counter()
        result = self.engine.transcribe(audio, **opts)
        self.stats["busy_s"] += time.perf_counter() - t0
        self.stats["transcriptions"] += 1
        return [s for s in result.segments if not _NOISE_ONLY.match(s.text)]

    def _maybe_partial(self) -> Iterator[StreamEvent]:
        if self._utt_start is None or not self.partials or self.governor.level >= 2:
            return
        pos = self._audio.end
        step = self.step * (2 if self.governor.level >= 1 else 1)
        if pos - self._last_partial < step or pos - self._utt_start < self.min_speech:
            return
        if self.vad is not None and self.vad._silent_since is not None:
            return  # the speaker paused: the final is likely due, don't delay it
        self._last_partial = pos
        segs = self._transcribe(self._audio.slice(self._utt_start, pos), tight=False)
        text = " ".join(s.text.strip() for s in segs).strip()
        self.stats["partials"] += 1
        if text and text != self._last_partial_text:
            self._last_partial_text = text
            yield self._event(PARTIAL, text, self._utt_start, pos, tuple(self._shift(segs, self._utt_start, pos)))
        yield from self._govern()

    def _finalize(self, end: int, reopen: bool = False) -> Iterator[StreamEvent]:
        start = self._utt_start
        self._utt_start = None
        end = min(end, self._audio.end)
        if start is not None and end - start >= self.min_speech:
            tight, final = self.governor.level >= 2, self.governor.level == 0
            first, prefix = start, None
            if final and self.context and self.vad is not None:
                first, prefix = self._context(start, end)
            segs = self._shift(self._transcribe(self._audio.slice(first, end), tight=tight, final=final,
                                                prefix=prefix), first, end)
            segs = _without_repeats([s for s in segs if s.text.strip()], self._text_tail(REPEAT_TAIL_CHARS))
            if self.context and self.vad is not None:
                self._history.append(_Committed(start, tuple(segs)))
            for i, seg in enumerate(segs):
                ev = self._event(FINAL, seg.text.strip(), int(round(seg.start * SAMPLE_RATE)),
                                 int(round(seg.end * SAMPLE_RATE)), (seg,))
                if reopen and i == len(segs) - 1:  # the utterance goes on after a cut inside speech
                    ev = dataclasses.replace(ev, detail={"cut_at": round(end / SAMPLE_RATE, 3)})
                self.finals.append(ev)
                self.stats["finals"] += 1
                yield ev
        if start is not None:
            self._committed_end = max(self._committed_end, end)
            self._forget_before(self._committed_end)   # the next utterance starts at or after it
        self._audio.drop_before(min(end, self._keep_from()))
        if reopen:
            self._begin(end)
        yield from self._govern()

    def _shift(self, segs: List[Segment], start: int, end: int) -> List[Segment]:
        """Segments in stream time, clamped to [start, end] and after the last final."""
        lo = max(start, self._committed_end) / SAMPLE_RATE
        hi = end / SAMPLE_RATE
        out = []
        for s in segs:
            a = min(max(lo, start / SAMPLE_RATE + s.start), hi)
            b = min(max(a, start / SAMPLE_RATE + s.end), hi)
            out.append(dataclasses.replace(s, start=round(a, 3), end=round(b, 3), tokens=[], words=[]))
            lo = b
        return out

    # ------------------------------------------------------------------ keeping up
    def behind_s(self) -> float:
        """Captured audio not yet taken in by the transcriber, seconds."""
        return max(0, self.ring.written - self._audio.end) / SAMPLE_RATE

    def _govern(self) -> Iterator[StreamEvent]:
        behind = self.behind_s()
        dropped = self.ring.dropped
        if dropped > self._dropped_seen:
            self.stats["dropped_s"] = dropped / SAMPLE_RATE
            self._dropped_seen = dropped
        change = self.governor.observe(behind)
        if change > 0:
            detail = {"level": self.governor.level, "behind_s": round(behind, 3)}
            if self.governor.level == 3:
                detail["model"] = self._downgrade_model()
                if detail["model"] is None:
                    detail["note"] = "no smaller model to switch to"
                else:
                    self.governor.cannot_go_below(3)
            log.warning("streaming is %.2f s behind real time: economy level %d", behind, self.governor.level)
            yield self._status(DEGRADED, **detail)
        elif change < 0:
            yield self._status(RECOVERED, level=self.governor.level, behind_s=round(behind, 3))

    def _downgrade_model(self) -> Optional[str]:
        """Ask a WhisperManager for its next smaller model (a plain Model has none)."""
        downgrade = getattr(self.engine, "downgrade", None)
        return downgrade(reason="falling behind real time") if callable(downgrade) else None

    # ------------------------------------------------------------------ events
    def _event(self, kind: str, text: str, start: int, end: int, segments=()) -> StreamEvent:
        return StreamEvent(kind, text, round(start / SAMPLE_RATE, 3), round(end / SAMPLE_RATE, 3),
                           self._utterance, tuple(segments), round(self.behind_s(), 3), self.clock())

    def _status(self, kind: str, **detail) -> StreamEvent:
        pos = self._audio.end / SAMPLE_RATE
        return StreamEvent(kind, "", pos, pos, self._utterance, (), round(self.behind_s(), 3), self.clock(),
                           detail)
