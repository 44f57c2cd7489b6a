"""Keep freed memory in the process, so that no timing pays the kernel for fresh pages.

glibc's malloc serves a large block with mmap and gives it back with munmap when freed; the
next block of that size then takes a page fault (and a page of zeros) per 4 KiB touched. Which
blocks count as large depends on the process's history (the mmap threshold starts at 128 KiB
and rises each time a larger mapped block is freed, up to 32 MiB), so the same code pays those
faults in one process and not in the next: PyTorch's particle step at m = 1e5 (51 MB
temporaries per step) took 45 ms in one full benchmark run and 121 ms in the next, 109-120 ms
in four fresh processes and 44-45 ms in each with freed memory kept, and the quadrature-vs-fv
ratio on ReLU read 20 and 28 in two runs whose own study timings agreed to 3%. A benchmark
compares implementations, not the allocator's state: `keep_freed_memory` turns off mmap for
blocks (M_MMAP_MAX = 0) and the trimming of the heap's top (M_TRIM_THRESHOLD), in this process
by mallopt and in every child it starts by the environment (the fv-floor subprocesses, the
fluctuation commands). A program that allocates the same temporaries at every step, as PyTorch's
step or numpy's does, then reuses its pages; one that does not allocate, as gflow's fused
kernels, is unaffected.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

#: mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
#: largest trim threshold mallopt accepts (an int)
_NEVER = 2**31 - 1
ENVIRONMENT = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(_NEVER)}


def keep_freed_memory() -> str:
    """Turn off glibc's returning of freed memory here and in child processes; returns what was
    done ("glibc mallopt: ..." or why nothing was)."""
    os.environ.update(ENVIRONMENT)
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return "unchanged (no glibc mallopt on this platform)"
    if not (mallopt(_M_MMAP_MAX, 0) and mallopt(_M_TRIM_THRESHOLD, _NEVER)):
        return "unchanged (mallopt refused)"
    return "glibc mallopt: M_MMAP_MAX = 0, M_TRIM_THRESHOLD = 2^31 - 1 (children by the environment)"
