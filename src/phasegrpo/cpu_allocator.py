"""On a CPU run, glibc's malloc keeps freed memory for reuse instead of handing it back.

A GRPO step's tensors change shape every step (prompt and completion lengths vary), and glibc
serves each large tensor with a fresh `mmap` and unmaps it when freed: the next step faults the
same pages in again, zeroed by the kernel. With the embedded model that was ~15 % of a CPU step
(benchmarks/bench_step.py, `fast`: 18.3 -> 15.2 s/step; policy forward 2.7 -> 1.9 s). Serving
large blocks from the heap and never trimming it keeps the pages resident; peak RSS is about
the same (the largest step's tensors), it is just not returned between steps.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt(3) options (malloc.h).
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4

KEEP_FREED_MEMORY = {
    M_MMAP_MAX: 0,  # large blocks come from the heap, where freed memory stays mapped
    M_TRIM_THRESHOLD: 2**31 - 1,  # never give the heap's top back to the kernel
    M_TOP_PAD: 256 * 2**20,  # grow the heap in 256 MiB strides: fewer brk calls
}


def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed memory (this process, from now on). True when it did;
    False where there is no glibc `mallopt` (macOS, Windows, musl), which changes nothing else."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(option, value) == 1 for option, value in KEEP_FREED_MEMORY.items())


__all__ = ["keep_freed_memory"]
