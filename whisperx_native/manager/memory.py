"""Process memory: read RSS, and hand freed heap back to the OS."""

from __future__ import annotations

import os
import sys

from .._heap import release_free_heap

__all__ = ["process_rss", "release_free_heap"]

# Linux: the kernel's own count (what psutil reads too), without importing psutil into a
# process whose budget is counted in megabytes (psutil's import is ~1 MB of it).
_STATM = "/proc/self/statm" if sys.platform.startswith("linux") else None
_PAGE = os.sysconf("SC_PAGE_SIZE") if _STATM else 0


def process_rss() -> int:
    if _STATM is not None:
        try:
            with open(_STATM, "rb") as f:
                return int(f.read().split()[1]) * _PAGE
        except OSError:  # /proc not mounted (some containers)
            pass
    import psutil

    return psutil.Process().memory_info().rss
