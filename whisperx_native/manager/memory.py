"""Process memory: read RSS, and hand freed heap back to the OS."""

from __future__ import annotations

import psutil

from .._heap import release_free_heap

__all__ = ["process_rss", "release_free_heap"]


def process_rss() -> int:
    return psutil.Process().memory_info().rss
