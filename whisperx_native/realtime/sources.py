"""Where stream audio comes from: a simulated capture thread, or a microphone.

:class:`SimulatedCapture` plays recorded audio into a :class:`RingBuffer` the way
a sound card callback would: fixed-size blocks in the capture format (rate,
dtype, channels), at real-time pace, or in a fast mode for tests and CI that
pushes as soon as the ring has room (never overflowing it). It records when each
block was pushed, which is what latency measurements start from.

:func:`microphone` is a thin ``sounddevice`` adapter (the ``mic`` extra).
"""

from __future__ import annotations

import bisect
import threading
import time
from typing import List, Optional, Tuple

import numpy as np

from ..audio import SAMPLE_RATE, as_samples
from .ringbuffer import RingBuffer

__all__ = ["SimulatedCapture", "to_capture_format", "microphone"]


def to_capture_format(samples16k: np.ndarray, rate: int = SAMPLE_RATE, dtype: str = "float32",
                      channels: int = 1) -> np.ndarray:
    """16 kHz mono float32 → what a sound card would deliver: (frames, channels) at ``rate``."""
    x = samples16k.astype(np.float32)
    if rate != SAMPLE_RATE:
        import soxr

        x = soxr.resample(x, SAMPLE_RATE, rate, quality="HQ").astype(np.float32)
    if dtype == "int16":
        x = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
    elif dtype != "float32":
        from ..errors import OptionError

        raise OptionError("dtype must be 'float32' or 'int16'")
    return np.repeat(x[:, None], channels, axis=1)


class SimulatedCapture:
    """A capture thread that plays ``audio`` (a path or 16 kHz samples) into ``ring``.

    ``block_s`` is the callback block (sounddevice's ``blocksize`` / rate).
    ``realtime=True`` paces blocks on the wall clock (schedule-based: no drift);
    ``speed`` > 1 plays faster. ``realtime=False`` is the fast mode: a block is
    pushed as soon as the ring has room for it. ``push_log`` holds
    ``(16 kHz sample index after the block, perf_counter time)`` of every push.
    """

    def __init__(self, audio, ring: RingBuffer, *, block_s: float = 0.05, realtime: bool = True,
                 speed: float = 1.0, dtype: str = "float32") -> None:
        from ..validation import check_float

        block_s = check_float(block_s, "block_s", 1e-4, 10.0)
        speed = check_float(speed, "speed", 0.01, 1000.0)
        samples = as_samples(audio)
        self.ring = ring
        self.frames = to_capture_format(samples, ring.input_rate, dtype, ring.input_channels)
        self.block = max(1, int(round(block_s * ring.input_rate)))
        self.block_s = self.block / ring.input_rate
        self.realtime = realtime
        self.speed = float(speed)
        self.push_log: List[Tuple[int, float]] = []
        self.t0: Optional[float] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="simulated-capture", daemon=True)

    @property
    def duration_s(self) -> float:
        return self.frames.shape[0] / self.ring.input_rate

    def start(self) -> "SimulatedCapture":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: Optional[float] = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        ring, n = self.ring, self.frames.shape[0]
        headroom = int(self.block * SAMPLE_RATE / ring.input_rate) + 64
        self.t0 = time.perf_counter()
        k = 0
        for i in range(0, n, self.block):
            if self._stop.is_set():
                break
            block = self.frames[i:i + self.block]
            if self.realtime:
                due = self.t0 + k * self.block_s / self.speed
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            else:
                while ring.capacity - (ring.written - ring.position) < headroom and not self._stop.is_set():
                    time.sleep(0.002)  # fast mode only: wait for the consumer instead of overflowing
            ring.push(block)
            self.push_log.append((ring.written, time.perf_counter()))
            k += 1
        ring.close()

    def pushed_at(self, sample: int) -> Optional[float]:
        """perf_counter time of the push that delivered 16 kHz sample ``sample`` (None: not yet)."""
        ends = [e for e, _ in self.push_log]
        i = bisect.bisect_right(ends, sample)
        return self.push_log[i][1] if i < len(self.push_log) else None


def microphone(ring: RingBuffer, *, device=None, block_s: float = 0.05, dtype: str = "float32"):
    """A started ``sounddevice.InputStream`` that pushes into ``ring`` (needs the ``mic`` extra).

    The stream's rate and channels are the ring's ``input_rate`` / ``input_channels``;
    the callback only pushes (lock-free, never blocks). Stop it with ``stream.close()``
    and then ``ring.close()``. Not testable without a sound card: kept this thin on purpose."""
    try:
        import sounddevice as sd
    except ImportError:  # pragma: no cover - optional dependency
        raise ImportError("microphone capture needs sounddevice: pip install 'whisperx_native[mic]'") from None

    def callback(indata, frames, time_info, status):  # pragma: no cover - needs a device
        ring.push(indata)

    stream = sd.InputStream(samplerate=ring.input_rate, channels=ring.input_channels, dtype=dtype,
                            blocksize=int(block_s * ring.input_rate), device=device, callback=callback)
    stream.start()
    return stream
