"""Hand the heap's freed pages back to the OS (glibc's ``malloc_trim``; elsewhere nothing).

glibc keeps memory a thread freed in that thread's heap, up to its high-water mark: a
transcription's temporaries (numpy's, whisper.cpp's host vectors) would stay in the
process's RSS after they are gone, and each chunk of a long file would start where the
last one peaked."""

from __future__ import annotations

import ctypes
import functools


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own libc: no library search
    except (OSError, TypeError, AttributeError):  # not glibc, or no symbol table (Windows)
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_heap() -> None:
    """Return every heap's free pages to the OS (``malloc_trim(0)``: all arenas, whole
    pages only; a millisecond or less). Does nothing where there is no such call."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
