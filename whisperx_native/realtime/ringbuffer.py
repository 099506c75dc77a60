"""A lock-free single-producer / single-consumer ring buffer of 16 kHz mono float32 audio.

The producer is typically an audio-capture callback (``sounddevice.InputStream``),
which must never block: ``push`` takes no lock and never waits for the consumer.
When the consumer falls more than ``capacity`` behind, the oldest audio is
overwritten (drop-oldest); the consumer notices, skips it and counts it, so what
it reads is always intact audio with its absolute position since stream start.

How torn reads are excluded (a seqlock in miniature): the producer announces the
range it is about to write (``_claimed``), writes, then publishes it
(``_written``). The consumer copies what is published, then re-reads
``_claimed``: every sample the producer may have started to overwrite meanwhile
(index < claimed - capacity) is discarded and counted as dropped. Both counters
only grow, and each has one writer.
"""

from __future__ import annotations

import time
from typing import Optional, Tuple

import numpy as np

from ..audio import SAMPLE_RATE, downmix, to_float32
from ..errors import AudioError, ClosedError, OptionError
from ..validation import check_float, check_int

__all__ = ["RingBuffer", "to_mono_float32"]


def to_mono_float32(chunk: np.ndarray, channels: int = 1) -> np.ndarray:
    """A capture chunk as 1-D float32: int16 is scaled to [-1, 1), stereo is averaged.

    ``chunk`` is 1-D (mono, or interleaved when ``channels`` > 1) or 2-D
    (frames, channels), as sounddevice delivers it."""
    try:
        a = np.asarray(chunk)
    except Exception as exc:
        raise AudioError(f"cannot interpret {type(chunk).__name__} as a capture chunk: {exc}") from None
    a = to_float32(a, "capture chunk")
    if a.ndim == 1 and channels > 1:
        if a.size % channels:
            raise AudioError(f"interleaved chunk of {a.size} samples is not a whole number of "
                             f"{channels}-channel frames")
        a = a.reshape(-1, channels)
    if a.ndim == 2:
        a = downmix(a)
    elif a.ndim != 1:
        raise AudioError(f"capture chunk must be 1-D or (frames, channels), got shape {a.shape}")
    return a


#: Capacity bounds: a ring must hold at least one VAD frame (32 ms) and fit in memory
#: (an hour of 16 kHz float32 is 230 MB).
MIN_CAPACITY_S = 0.032
MAX_CAPACITY_S = 3600.0


class RingBuffer:
    """Fixed-capacity audio ring: one producer thread, one consumer thread.

    ``capacity_s`` seconds of 16 kHz audio are kept. The producer calls
    :meth:`push` with chunks of any length at ``input_rate`` (resampled to 16 kHz
    with soxr's streaming resampler), float32 or int16, mono or ``input_channels``
    interleaved; then :meth:`close` at the end of the stream. The consumer calls
    :meth:`read` / :meth:`wait`. Positions are absolute sample indices at 16 kHz
    since the first push, so timestamps survive dropped audio.
    """

    def __init__(self, capacity_s: float = 30.0, *, input_rate: int = SAMPLE_RATE, input_channels: int = 1) -> None:
        capacity_s = check_float(capacity_s, "capacity_s", 0.0, MAX_CAPACITY_S)
        if capacity_s < MIN_CAPACITY_S:
            raise OptionError(f"capacity_s must be {MIN_CAPACITY_S}..{MAX_CAPACITY_S} s, got {capacity_s}")
        rate = check_float(input_rate, "input_rate", 1000.0, 384000.0)
        if rate != int(rate):
            raise OptionError(f"input_rate must be a whole number of Hz, got {rate}")
        self.capacity = int(round(capacity_s * SAMPLE_RATE))
        self.input_rate = int(rate)
        self.input_channels = check_int(input_channels, "input_channels", 1, 64)
        self._buf = np.zeros(self.capacity, np.float32)
        self._resampler = None
        if self.input_rate != SAMPLE_RATE:
            import soxr

            # "HQ" keeps the filter delay small (a few ms): the capture path stays low-latency.
            self._resampler = soxr.ResampleStream(self.input_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        # Producer-owned counters.
        self._claimed = 0          # samples the producer has started writing
        self._written = 0          # samples fully written (published)
        self._closed = False
        self.overflows = 0         # pushes that overwrote audio the consumer had not read
        self.max_push_s = 0.0      # worst time one push took (instrumentation)
        # Consumer-owned counters.
        self._read = 0             # next sample the consumer will get
        self._dropped_seen = 0     # samples the consumer found overwritten

    # ------------------------------------------------------------------ producer side
    def push(self, chunk: np.ndarray) -> int:
        """Append a capture chunk; returns the 16 kHz samples added. Never blocks.

        Safe to call from an audio callback: no lock, no wait on the consumer."""
        t0 = time.perf_counter()
        if self._closed:
            raise ClosedError("push() after close(): the stream has ended")
        x = to_mono_float32(chunk, self.input_channels)
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x)
        n = self._write(x)
        dt = time.perf_counter() - t0
        if dt > self.max_push_s:
            self.max_push_s = dt
        return n

    def _write(self, x: np.ndarray) -> int:
        n = int(x.size)
        if n == 0:
            return 0
        cap = self.capacity
        start = self._written
        end = start + n
        if n > cap:  # only the newest `cap` samples can be kept: the rest is dropped
            x = x[n - cap:]
            n = cap
        if end - self._read > cap:
            self.overflows += 1
        self._claimed = end  # announce the whole range before touching the storage
        i = (end - n) % cap
        first = min(n, cap - i)
        self._buf[i:i + first] = x[:first]
        if first < n:
            self._buf[:n - first] = x[first:]
        self._written = end  # publish
        return end - start

    def close(self) -> None:
        """End of stream: flush the resampler's tail; the consumer drains what is left."""
        if self._closed:
            return
        if self._resampler is not None:
            self._write(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        self._closed = True

    # ------------------------------------------------------------------ consumer side
    @property
    def closed(self) -> bool:
        """The producer has closed the stream (there may still be audio to read)."""
        return self._closed

    @property
    def exhausted(self) -> bool:
        """Closed and fully read."""
        return self._closed and self._read >= self._written

    @property
    def written(self) -> int:
        """Samples (16 kHz) pushed since the stream started."""
        return self._written

    @property
    def position(self) -> int:
        """Absolute index of the next sample ``read`` returns (after any drop)."""
        return max(self._read, self._claimed - self.capacity)

    def available(self) -> int:
        """Samples ready to read now (readable ones only: overwritten audio is not counted)."""
        return max(0, self._written - self.position)

    @property
    def dropped(self) -> int:
        """Samples lost to overflow so far (found by the consumer, or lost and not yet read)."""
        return self._dropped_seen + max(0, self._claimed - self.capacity - self._read)

    def read(self, max_samples: Optional[int] = None) -> Tuple[int, np.ndarray]:
        """Take up to ``max_samples`` (all available by default) samples.

        Returns ``(start, samples)``: ``start`` is the absolute index of the first
        sample. Never blocks; the array is a copy, and empty when nothing is ready."""
        if max_samples is not None:
            max_samples = int(check_float(max_samples, "max_samples", 0.0, float(2**62)))
        cap = self.capacity
        while True:
            written = self._written
            start = max(self._read, self._claimed - cap)
            end = written if max_samples is None else min(written, start + max(0, int(max_samples)))
            if end <= start:
                self._skip_to(start)
                return start, np.zeros(0, np.float32)
            out = np.empty(end - start, np.float32)
            i = start % cap
            first = min(end - start, cap - i)
            out[:first] = self._buf[i:i + first]
            if first < out.size:
                out[first:] = self._buf[:out.size - first]
            # Anything the producer may have started to overwrite during the copy is invalid.
            valid_from = self._claimed - cap
            if valid_from <= start:
                self._skip_to(start)
                self._read = end
                return start, out
            if valid_from >= end:
                continue  # the whole copy is stale: try again from the new oldest sample
            self._skip_to(valid_from)
            self._read = end
            return valid_from, out[valid_from - start:]

    def _skip_to(self, start: int) -> None:
        if start > self._read:
            self._dropped_seen += start - self._read
            self._read = start

    def wait(self, n_samples: int, timeout: Optional[float] = None, poll_s: float = 0.005) -> bool:
        """Sleep until ``n_samples`` are readable or the stream is closed; False on timeout.

        Polls (the producer never signals: signalling would take a lock)."""
        n_samples = check_float(n_samples, "n_samples", 0.0, float(2**62))
        if timeout is not None:
            timeout = check_float(timeout, "timeout", 0.0, 1e9)
        poll_s = check_float(poll_s, "poll_s", 1e-6, 1.0)
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.available() < n_samples and not self._closed:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)
        return True

    def stats(self) -> dict:
        """Counters for reports: written, read position, dropped, overflow pushes, worst push time."""
        return {
            "capacity_s": self.capacity / SAMPLE_RATE,
            "written_s": self._written / SAMPLE_RATE,
            "dropped_samples": self.dropped,
            "overflows": self.overflows,
            "max_push_ms": self.max_push_s * 1000.0,
        }

    def __repr__(self) -> str:
        return (f"<RingBuffer {self.capacity / SAMPLE_RATE:.1f} s, {self.available()} ready, "
                f"{self.dropped} dropped{', closed' if self._closed else ''}>")
