"""Process memory: read RSS, and hand freed heap back to the OS."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import psutil


def process_rss() -> int:
    return psutil.Process().memory_info().rss


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc.malloc_trim if libc is not None and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def release_free_heap() -> None:
    """glibc keeps freed heap mapped; malloc_trim(0) returns it, so an unloaded model
    shows up as lower RSS (elsewhere this does nothing)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
