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
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from compiler.codegen_cpu_fpenv import flush_mode, set_flush_mode

_lock = threading.Lock()
_threads: int | None = None  # the budget, found on first use
_helpers: ThreadPoolExecutor | None = None  # Python threads for run_in_parts, made on first use
_helpers_pid = 0  # the process that made them: a fork's child has none of their threads


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


# OpenBLAS's workers spin after each call for 2^28 cycles (~80 ms) before they sleep; a parallel
# loop that starts in that time shares the cores with a spinning thread. On W3 the register-tiled
# convolutions right after a GEMM took 4.7 ms instead of 2.7 (README, Benchmarks). 2^20 cycles
# (~0.3 ms) still keeps the workers awake between the back-to-back GEMMs of one layer.
BLAS_SPIN_EXPONENT = 20
_blas_quieted = False


def quiet_blas_workers() -> bool:
    """Shortens OpenBLAS's spin after each call to 2^BLAS_SPIN_EXPONENT cycles, once per
    process, before the first split work (run_in_parts) that competes with it; says whether it
    did. Its pool reads the setting when it starts, so the workers are stopped (between two of
    this thread's BLAS calls) and start again with it on the next call. A BLAS call another
    thread of the program makes at that very moment could lose its workers: a program that
    calls NumPy's BLAS from several threads while its first convolution runs should set
    OPENBLAS_THREAD_TIMEOUT itself. A user's own OPENBLAS_THREAD_TIMEOUT stands (any value);
    other BLAS libraries are left alone."""
    global _blas_quieted
    with _lock:
        if _blas_quieted or "OPENBLAS_THREAD_TIMEOUT" in os.environ:
            return False
        _blas_quieted = True
        library = _openblas()
        if library is None:
            return False
        os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(BLAS_SPIN_EXPONENT)
        library.openblas_read_env()
        library.blas_thread_shutdown_()
        return True


def _openblas():
    """The OpenBLAS this process loaded (NumPy's), by ctypes, or None (another BLAS, not Linux,
    or a build without the functions used here)."""
    import ctypes

    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps
                     if "openblas" in line.rsplit("/", 1)[-1].lower()}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            library = ctypes.CDLL(path)
            library.openblas_read_env.restype = None
            library.blas_thread_shutdown_.restype = ctypes.c_int
            return library
        except (OSError, AttributeError):
            continue
    return None


def run_in_parts(fn: Callable[[int, int], object], total: int) -> None:
    """fn(first, last) over [0, total) in thread_budget() contiguous parts at once: one on the
    calling thread, the others on a pool of Python threads that wait (not spin) between calls.
    fn must release the GIL (a nogil Numba loop) and write apart from the other parts. Work
    split this way costs no parallel (`prange`) compile: the register-tiled convolutions are
    the serial loops, called once per part (W3's cold first step: 4.6 s, against 5.7 s with
    their `prange` versions)."""
    global _helpers, _helpers_pid
    parts = min(thread_budget(), total)
    if parts < 2:
        fn(0, total)
        return
    quiet_blas_workers()  # a spinning OpenBLAS worker would take a core from a part
    with _lock:
        if _helpers is None or _helpers_pid != os.getpid():
            # in a forked child the parent's pool looks alive but has no threads: a new one
            _helpers = ThreadPoolExecutor(_threads - 1, thread_name_prefix="symgraph")
            _helpers_pid = os.getpid()
        helpers = _helpers
    bounds = [total * k // parts for k in range(parts + 1)]
    mode = flush_mode()  # the caller's (a run flushes denormals: codegen_cpu_fpenv)
    others: list[Future] = [helpers.submit(_in_mode, mode, fn, bounds[k], bounds[k + 1])
                            for k in range(1, parts)]
    try:
        fn(bounds[0], bounds[1])
    finally:
        for future in others:
            future.result()


def _in_mode(mode: int | None, fn: Callable[[int, int], object], first: int, last: int) -> None:
    """fn(first, last) on a helper thread with the caller's floating-point flush mode."""
    old = set_flush_mode(mode)
    try:
        fn(first, last)
    finally:
        set_flush_mode(old)
