"""Hand the heap's freed pages back to the OS (glibc's ``malloc_trim``; elsewhere nothing).

glibc keeps memory a thread freed in that thread's heap, up to its high-water mark: a
transcription's temporaries (numpy's, whisper.cpp's host vectors) would stay in the
process's RSS after they are gone, and each chunk of a long file would start where the
last one peaked.

glibc also raises its mmap threshold each time a block it mapped is freed (up to 32 MB):
after the first chunk's audio or features were freed, blocks of that size come from the
heap instead, and what they leave behind when freed stays resident beside the next
graph's buffers. :func:`keep_mmap_threshold` holds it at its 128 kB default.
"""

from __future__ import annotations

import ctypes
import functools
import os

#: mallopt's parameter number (glibc malloc.h) and glibc's default threshold.
_M_MMAP_THRESHOLD = -3
_DEFAULT_MMAP_THRESHOLD = 128 * 1024
#: Environment variables by which a user tunes glibc's malloc: they win over ours.
_TUNED_BY_USER = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")


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


@functools.lru_cache(maxsize=1)
def keep_mmap_threshold() -> bool:
    """Hold glibc's mmap threshold at 128 kB (``mallopt(M_MMAP_THRESHOLD)``): blocks of that
    size and more are mapped and unmapped, so freeing them gives the memory back at once.
    Measured (tiny.en-q5e8, beam 5, whole-process peak RSS): jfk.wav 98.3 -> 96.4 MB, a
    4-minute file 110.4 -> 103.4 MB. Once per process, from the first Model; not where the
    user tuned malloc by environment, nor off glibc. Returns whether it was set."""
    if os.environ.get("WHISPERX_NATIVE_KEEP_MALLOC") or any(k in os.environ for k in _TUNED_BY_USER):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
        ctypes.CDLL(None).malloc_trim  # glibc's own: musl's mallopt is a stub
    except (OSError, TypeError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, _DEFAULT_MMAP_THRESHOLD) == 1
