"""How the host's allocator treats the big arrays a plan makes and drops again every run.

Each run of a plan allocates the same arrays (matmul products, im2col patches, activations and
their gradients) and frees them a few steps later. glibc's malloc serves a block above its mmap
threshold (128 KiB, raised by frees to at most 32 MiB) with a fresh mmap and returns it with
munmap, so every run page-faults every page of those arrays again. Measured on the 2-core
benchmark machine (benchmarks W4, W3, W1; milliseconds per step, side by side in one minute):
W4 117 -> 73, W3 32 -> 23, W1 4.1 -> 3.7. With higher mmap and trim thresholds, freed blocks stay
in the process heap and malloc hands them back on the next run: the reuse a buffer pool would
give, for NumPy's, BLAS's and Numba's allocations alike, without copying a fetched value out of
a pool.

The price: up to TRIM_THRESHOLD bytes of freed memory stay with the process instead of going
back to the system, and the setting is process-wide (like `OMP_WAIT_POLICY`, it is the process's
allocator). SYMGRAPH_HOST_MALLOC=default leaves glibc's defaults alone. Other C libraries (musl,
macOS, Windows): nothing is changed.
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks up to this size come from the heap; a larger one is mapped and unmapped each time (its
# page faults are then small beside the work on it).
MMAP_THRESHOLD = 256 << 20
# Free memory at the top of the heap kept for the next run before any goes back to the system.
TRIM_THRESHOLD = 512 << 20
# glibc before 2.26 refuses an mmap threshold above 32 MiB (half its largest arena heap)
_OLD_GLIBC_MMAP_MAX = 32 << 20

_lock = threading.Lock()
_state: bool | None = None  # None: not tried yet; then whether the thresholds were set


def keep_freed_pages() -> bool:
    """Sets glibc's mmap and trim thresholds for plan-sized arrays, once per process. Returns
    whether they are set (False on other C libraries or with SYMGRAPH_HOST_MALLOC=default)."""
    global _state
    with _lock:
        if _state is None:
            _state = _tune()
        return _state


def _tune() -> bool:
    if os.environ.get("SYMGRAPH_HOST_MALLOC", "").lower() == "default":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)  # the process's own C library
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if not mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD):
        if not mallopt(_M_MMAP_THRESHOLD, _OLD_GLIBC_MMAP_MAX):
            return False
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
