"""The thread budget that parallel (`prange`) kernels share with BLAS.

One budget: the cores this process may use. A plan's steps run one after another, so a parallel
loop and a BLAS call never run at the same time and each may use the whole budget. Numba's
threading layer is OpenMP (`omp`): the `workqueue` layer aborts the process when two Python
threads (two sessions) launch parallel loops at once. OMP_WAIT_POLICY=PASSIVE (unless the user
set it) goes into the environment before libgomp loads: its threads then sleep after a loop
instead of spinning, which on a busy 2-core machine stole the cores from BLAS and made runs
3-13x slower (NUMBA_NOTES.md). Set up on first use, before any parallel launch. Where another
library loaded libgomp first (PyTorch ships its own libgomp.so.1, and Numba then uses that one),
its wait policy stands: active threads spin after each loop and slowed W4's next BLAS call by
~20% (README, Benchmarks); set OMP_WAIT_POLICY=PASSIVE before importing such a library.
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()
_threads: int | None = None  # the budget, found on first use


def thread_budget() -> int:
    """Threads a parallel loop may use: the cores this process may run on (at most
    NUMBA_NUM_THREADS), or 1 where OpenMP is missing."""
    global _threads
    with _lock:
        if _threads is not None:
            return _threads
        import numba

        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when libgomp loads, below
        if "NUMBA_THREADING_LAYER" not in os.environ:
            numba.config.THREADING_LAYER = "omp"
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cores = os.cpu_count() or 1
        _threads = max(1, min(cores, numba.config.NUMBA_NUM_THREADS))
        if _threads > 1 and numba.config.THREADING_LAYER == "omp":
            try:
                import numba.np.ufunc.omppool  # noqa: F401  (needs libgomp)
            except ImportError:
                _threads = 1
        return _threads


def use_thread_budget() -> bool:
    """Prepares the calling thread to launch a parallel loop on the whole budget; False when
    the budget is one thread (run the serial loop instead)."""
    if thread_budget() < 2:
        return False
    import numba

    numba.set_num_threads(_threads)  # per calling thread: a session's thread may be new
    return True
