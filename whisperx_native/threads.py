"""The thread policy: how many cores there are and how many threads a run gets.

Every count of cores and every thread decision of the package comes from here
(options, Model, validation, the manager, batch, quantization, the native layer's
clamps), so there is one answer to "how many threads?":

* ``cpu_count()``: the cores this process may run on (affinity-aware: a container's or
  ``taskset``'s limit, not the machine's);
* ``machine_cores()``: all of the machine's cores, what machine-wide counters
  (``/proc/loadavg``, psutil's CPU times) are measured against;
* ``default_threads()``: 4, never more than ``cpu_count()``;
* ``clamp(n)``: never more than ``cpu_count()`` (more only makes whisper.cpp's spinning
  barriers wait);
* ``for_load(n)``: at the start of a call, only the cores other processes leave free.
"""

from __future__ import annotations

import os
import time
from typing import Optional

__all__ = ["cpu_count", "machine_cores", "default_threads", "clamp", "busy_cores", "threads_for_load",
           "for_load", "DEFAULT_THREADS"]

#: Threads of a run nobody chose a count for: whisper.cpp's own default, and where its
#: encoder stops gaining much on the tiny..base models.
DEFAULT_THREADS = 4


def cpu_count() -> int:
    """Cores this process may run on (affinity-aware where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def machine_cores() -> int:
    """All of the machine's cores, whatever this process may use: what machine-wide
    measures (/proc/loadavg's runnable tasks, the system's CPU times) count against."""
    return max(cpu_count(), os.cpu_count() or 1)


def default_threads() -> int:
    """DEFAULT_THREADS, never more than the cores we may use."""
    return min(DEFAULT_THREADS, cpu_count())


def clamp(n: int) -> int:
    """``n`` threads, never more than the cores we may use."""
    return min(n, cpu_count())


_LOADAVG = "/proc/loadavg"


def busy_cores(reads: int = 3, gap_s: float = 0.001) -> Optional[int]:
    """Cores that other tasks keep busy right now, or None where the OS does not say.

    Linux counts the runnable tasks in /proc/loadavg (4th field, "running/total"); the
    caller is one of them. The minimum over a few reads a millisecond apart ignores a
    kernel thread passing through; a busy process shows up in every read. Our own other
    threads count too: a second transcription of this process is load like any other.
    """
    counts = []
    try:
        for i in range(reads):
            if i:
                time.sleep(gap_s)
            with open(_LOADAVG) as f:
                counts.append(int(f.read().split()[3].split("/")[0]))
            if counts[-1] <= 1:  # only the caller: the usual case costs one read, no sleep
                break
    except (OSError, ValueError, IndexError):
        return None
    return max(0, min(counts) - 1)


def threads_for_load(n_threads: int, busy: Optional[int], cores: int) -> int:
    """Threads to use when ``busy`` cores are taken by others: never more than the free
    cores. whisper.cpp's threads meet at a spinning barrier after every graph node; one of
    them waiting for a core makes the other spin, and a 2-thread run beside one busy
    process took 3x (encoder) to 20x (decoder) the time of a 1-thread run."""
    if busy is None or n_threads <= 1:
        return n_threads
    return max(1, min(n_threads, cores - busy))


def for_load(n_threads: int) -> int:
    """``n_threads``, or fewer where other processes keep cores busy right now
    (/proc/loadavg counts the whole machine's runnable tasks: compared with all its cores)."""
    if n_threads <= 1:
        return n_threads
    return threads_for_load(n_threads, busy_cores(), machine_cores())
