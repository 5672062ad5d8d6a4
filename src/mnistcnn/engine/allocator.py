"""Keep freed memory in the process for the next training step (glibc's ``mallopt``).

PyTorch's CPU tensors come from ``malloc``. glibc serves a request larger than its
mmap threshold (128 KiB at start, raised on its own as large blocks are freed) with a
fresh ``mmap`` and gives it back with ``munmap`` when freed, and it returns the top of
the heap to the system once more than the trim threshold (128 KiB) is free there. A
training step of a small network allocates and frees dozens of feature maps of a few
hundred kilobytes (a batch of 128 24x12x12 bfloat16 maps is 864 KiB), so every step
maps, zero-fills (page faults) and unmaps the same memory again: on this project's
2-core CPU that was 1.0-1.8 s of system time in a 3-second ``fast`` epoch, and the
epoch ran 1.2x slower than in a process where some earlier import had happened to
raise the threshold. Raising both thresholds once keeps those blocks in the heap for
reuse; PyTorch's CPU performance guide gets the same effect by preloading TCMalloc or
jemalloc (https://pytorch.org/tutorials/recipes/recipes/tuning_guide.html, "Switch
Memory allocator"), which needs the process to be started that way.

The thresholds (``mallopt(3)``; ``M_TRIM_THRESHOLD`` = -1 and ``M_MMAP_THRESHOLD`` = -3
in glibc's ``malloc.h``): blocks up to :data:`MMAP_THRESHOLD` (32 MiB, the largest
glibc accepts on 64-bit systems: half its 64 MiB heap size) come from the heap, and up
to :data:`TRIM_THRESHOLD` (256 MiB) of free heap is kept. The cost is memory the
process keeps after freeing it, at most about that much.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform
import sys

log = logging.getLogger(__name__)

#: glibc ``malloc.h``: ``#define M_TRIM_THRESHOLD -1``, ``#define M_MMAP_THRESHOLD -3``.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: Requests up to this many bytes are served from the heap (glibc's maximum on 64-bit).
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Up to this many bytes of free memory stay at the top of the heap.
TRIM_THRESHOLD = 256 * 1024 * 1024

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (module docstring) once per process.

    Returns:
        True when glibc accepted both (Linux with glibc); False elsewhere (macOS,
        Windows, musl), where nothing is changed. Never raises.
    """
    global _applied
    if _applied is None:
        _applied = _set_thresholds()
    return _applied


def _set_thresholds() -> bool:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mmap_ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        trim_ok = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    except (OSError, AttributeError):
        return False
    log.debug("glibc mallopt: mmap threshold %s, trim threshold %s", mmap_ok, trim_ok)
    return mmap_ok and trim_ok
