"""CPU pressure as the manager understands it, and the thread that watches it.

What "CPU use" means here: whisper.cpp's worker threads spin at 100 % while a
transcription runs, so the machine's total CPU use says nothing about pressure: it
would be "overloaded" on every call. The signal is the load that *other processes*
put on the machine:

    external load = (busy CPU time of the whole machine - CPU time of this process)
                    / (cores x elapsed time)

between two samples, averaged over a rolling window. When other programs keep the
cores busy, our threads get less of them and a smaller model keeps latency bounded;
our own work never counts against us.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Deque, Optional, Tuple

from ..threads import machine_cores

Sampler = Callable[[], float]


def external_load_sampler() -> Sampler:
    """A sampler returning the external load (0..1) since its previous call."""
    import psutil  # here, not at import: a manager without auto_downgrade never samples

    proc = psutil.Process()
    cores = machine_cores()  # psutil.cpu_times() is the whole machine's
    state = {}

    def busy() -> Tuple[float, float, float]:
        t = psutil.cpu_times()
        idle = t.idle + getattr(t, "iowait", 0.0)
        own = proc.cpu_times()
        return time.monotonic(), sum(t) - idle, own.user + own.system

    state["last"] = busy()

    def sample() -> float:
        now, sys_busy, own = busy()
        t0, sys0, own0 = state["last"]
        state["last"] = (now, sys_busy, own)
        dt = now - t0
        if dt <= 0:
            return 0.0
        other = max(0.0, (sys_busy - sys0) - (own - own0))
        return min(1.0, other / (cores * dt))

    return sample


class CpuMonitor:
    """Samples ``sampler`` every ``interval`` s on a daemon thread; keeps a rolling average.

    ``on_pressure()`` fires when the average over a full ``window`` stays above
    ``threshold``; afterwards the window restarts (so one long overload steps down once
    per window, not once per sample). ``on_calm()`` fires after ``calm_after`` seconds
    with the average below ``calm_threshold`` (None: never).
    """

    def __init__(self, on_pressure: Callable[[float], None], *, sampler: Optional[Sampler] = None,
                 threshold: float = 0.80, window: float = 10.0, interval: float = 0.5,
                 on_calm: Optional[Callable[[float], None]] = None, calm_after: Optional[float] = None,
                 calm_threshold: float = 0.5) -> None:
        if not 0 < threshold <= 1:
            from ..errors import OptionError

            raise OptionError("cpu threshold must be in (0, 1]")
        self.sampler = sampler or external_load_sampler()
        self.threshold, self.window, self.interval = threshold, window, interval
        self.on_pressure, self.on_calm = on_pressure, on_calm
        self.calm_after, self.calm_threshold = calm_after, calm_threshold
        self._samples: Deque[Tuple[float, float]] = deque()
        self._calm_since: Optional[float] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def average(self) -> float:
        samples = list(self._samples)
        return sum(v for _, v in samples) / len(samples) if samples else 0.0

    def start(self) -> "CpuMonitor":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="whisperx-cpu-monitor", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.feed(self.sampler(), time.monotonic())

    def feed(self, value: float, now: float) -> None:
        """Take one sample (the thread calls this; tests may call it with their own clock)."""
        self._samples.append((now, value))
        while self._samples and self._samples[0][0] < now - self.window:
            self._samples.popleft()
        covered = now - self._samples[0][0] >= self.window * 0.95 - self.interval
        avg = self.average
        if covered and avg > self.threshold:
            self._samples.clear()  # the next step needs a fresh full window of pressure
            self._calm_since = None
            self.on_pressure(avg)
            return
        if self.on_calm is None or self.calm_after is None:
            return
        if avg < self.calm_threshold:
            self._calm_since = self._calm_since or now
            if now - self._calm_since >= self.calm_after:
                self._calm_since = None
                self.on_calm(avg)
        else:
            self._calm_since = None
