"""Process set-up for the command-line edge: keep freed array memory in glibc's heap (``mallopt``).

A pure training step allocates its new parameters and optimizer moments (about 3 MB per step for 784-256-128-10
with Adam: parameters, ``mu``, ``nu``) and frees the previous ones. With glibc's default thresholds, blocks of that
size are fresh ``mmap`` s that go back to the OS when freed, so every step page-faults them in again (180-280 minor
faults per step measured here): an MNIST epoch of 784-256-128-10 with Adam took 1.13 s that way against 0.74 s
with the thresholds fixed (medians of 7, ``python scripts/bench_step.py`` with and without ``--malloc default``,
2026-12-02). This is process-wide, so only the edges call it (``fnn`` and the bench scripts), never the library.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["MALLOC_MMAP_THRESHOLD", "MALLOC_TRIM_THRESHOLD", "tune_malloc"]

MALLOC_MMAP_THRESHOLD = 16 << 20  # bytes: arrays up to this size come from the heap, not a fresh mmap each
MALLOC_TRIM_THRESHOLD = 256 << 20  # bytes of free heap kept for reuse instead of being returned to the OS
_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")  # glibc's own tunables: the user's choice wins


def tune_malloc() -> str | None:
    """glibc on Linux only: fix the mmap and trim thresholds; a description of what was set, or None.

    Nothing is changed (None) on other platforms, with another C library, or when the user has set glibc's own
    ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` environment variables.

    >>> tune_malloc() in (None, "glibc mallopt(M_MMAP_THRESHOLD=16 MiB, M_TRIM_THRESHOLD=256 MiB)")
    True
    """
    if not sys.platform.startswith("linux") or any(name in os.environ for name in _ENV):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        ok = libc.mallopt(m_mmap_threshold, MALLOC_MMAP_THRESHOLD) and libc.mallopt(m_trim_threshold,
                                                                                 MALLOC_TRIM_THRESHOLD)
    except (OSError, AttributeError):
        return None
    if not ok:
        return None
    return (f"glibc mallopt(M_MMAP_THRESHOLD={MALLOC_MMAP_THRESHOLD >> 20} MiB,"
            f" M_TRIM_THRESHOLD={MALLOC_TRIM_THRESHOLD >> 20} MiB)")
