"""Keeping the daemon's memory flat when many log followers come and go (glibc malloc only)."""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


_LIBC = _libc()


def tune() -> None:
    """Before threads start: two arenas, and large buffers always mapped and unmapped.

    Followers read the log in large buffers from the event loop and worker threads; glibc's
    default per-thread arenas and its sliding mmap threshold would otherwise keep such buffers in
    fragmented heaps after they are freed.
    """
    if _LIBC is not None:
        _LIBC.mallopt(_M_ARENA_MAX, 2)
        _LIBC.mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
        _LIBC.mallopt(_M_TRIM_THRESHOLD, 256 * 1024)


def release() -> None:
    """Hand free heap pages back to the kernel; called when the last follower leaves."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
