"""Numba's start-up for the cpu code generators: once per process, before a plan compiles.

Importing Numba and loading its typing and lowering registries (which Numba does at its first
compile or cache load) leaves ~86,000 objects that Python's cyclic garbage collector tracks
and that live as long as the process. While they are being made, the collector walks them
again and again: W1's warm first step (0.49-0.55 s) ran 264 collections, two of them full ones
of 17-20 and 40-46 ms, ~80-95 ms in all. Here the collector pauses while Numba loads, and then
`gc.freeze()` moves every object alive into its permanent generation, which collections skip:
the same step spends ~8 ms in the collector (0.48-0.54 -> 0.40-0.45 s, side by side), and a
full collection later costs ~0 instead of ~40 ms. Reference counting frees frozen objects as
always; what freezing costs is that an object alive at that moment which later becomes
garbage only through a reference cycle is never freed: at most what the program held when its
first cpu plan compiled. SYMGRAPH_GC_FREEZE=0 leaves the collector alone.

The registries load only before the first kernel that must compile (load_registries): Numba's
cache loads them before it loads any compiled code, which never uses them, so symgraph's kernel
cache loads that code without them (load_cached). A process whose kernels are all cached skips
them: warm first steps in `make bench` (SciPy installed) W1 0.40-0.58 -> 0.23-0.31 s, W3 ~0.50
-> 0.30-0.33 s.

Where SciPy is installed, loading those registries also imports scipy.linalg: Numba's arraymath
asks at import whether SciPy's BLAS is there, for a flag that only np.correlate and np.convolve
read when a function using them is typed. With SciPy 1.17 that import took ~0.2 s of W1's warm
first step. No symgraph kernel calls BLAS from Numba, so the question is put off
(_defer_blas_check): the flag answers it, the same way, when first read. W1's warm first step
with SciPy installed: 0.42-0.51 -> 0.32-0.35 s (`benchmarks/run.py --first-step w1 cpu`).

On Intel's AVX-512 processors LLVM's tuning prefers 256-bit vectors, and with it W2's fused
loop (exp, tanh and a float64 sum) was left scalar (no ymm or zmm arithmetic in its code) on
an Intel Xeon here: 12-14 ms a call on one thread against 8-9 ms vectorized. symgraph turns
that preference off (`-prefer-256-bit` added to the host's features, which then generates the
code LLVM generates for AMD's AVX-512 processors), unless NUMBA_CPU_NAME or NUMBA_CPU_FEATURES
is set (_wide_vectors).
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_lock = threading.Lock()
_done = False
_registries_loaded = False


def start_numba() -> None:
    """Imports Numba now, then freezes the collector's view of what is alive (module
    docstring). Its registries load later, before the first compile (load_registries)."""
    global _done
    with _lock:
        if _done:
            return
        with _collector_paused():
            _wide_vectors()
            import numba.core.registry  # noqa: F401  (the cpu target, made on first use)
        _done = True


def load_registries() -> None:
    """Loads Numba's typing and lowering registries, once, as its first compile or cache load
    would, with the collector paused and then frozen. symgraph's kernel cache loads compiled
    code without them (cache.py, _tolerate_corrupt_entries) and calls this before the first
    kernel that must compile: a process whose kernels are all cached never loads them (W1's
    warm first step: ~0.13 s of ~0.44 s)."""
    global _registries_loaded
    with _lock:
        if _registries_loaded:
            return
        with _collector_paused():
            from numba.core.registry import cpu_target

            with _defer_blas_check():
                cpu_target.target_context.refresh()  # what Numba's first compile does
        _registries_loaded = True


def load_cached(numba_cache: Any, load: Callable[[Any, Any], Any], sig: Any,
                target_context: Any) -> Any:
    """What `load`, a Numba cache's load_overload, returns for `sig`, without loading Numba's
    typing and lowering registries first as it does: cpu machine code loaded from the cache
    never uses them. It does use Numba's runtime (NRT: it allocates with it), started here.
    On a miss (Numba compiles next) the registries load (load_registries)."""
    from numba.core.cpu import CPUContext
    from numba.core.runtime import rtsys

    unrefreshed = getattr(numba_cache, "_load_overload", None)  # the load after the refresh
    guard = getattr(numba_cache, "_guard_against_spurious_io_errors", None)
    if unrefreshed is None or guard is None or not isinstance(target_context, CPUContext):
        return load(sig, target_context)
    rtsys.initialize(target_context)
    with guard():
        found = unrefreshed(sig, target_context)
    if found is None:
        load_registries()
    return found


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The collector paused while Numba makes objects that all stay, which are then frozen
    (module docstring), unless SYMGRAPH_GC_FREEZE=0; a collector the user disabled stays so."""
    freeze = os.environ.get("SYMGRAPH_GC_FREEZE", "1") != "0"
    paused = freeze and gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
        if freeze:
            gc.freeze()
    finally:
        if paused:
            gc.enable()


def _wide_vectors() -> None:
    """Numba's target features: the host's, less LLVM's preference for 256-bit vectors on an
    AVX-512 processor (module docstring); before Numba makes its target machine."""
    from numba.core import config

    if config.CPU_NAME is not None or config.CPU_FEATURES is not None:
        return  # the user's choice (NUMBA_CPU_NAME, NUMBA_CPU_FEATURES)
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features().flatten()
    if "+avx512f" in features.split(","):
        config.CPU_FEATURES = features + ",-prefer-256-bit"


class _BlasFound:
    """Numba's arraymath._HAVE_BLAS, decided on first read as Numba decides it at import:
    whether its ensure_blas() (which imports scipy.linalg.cython_blas) succeeds."""

    def __init__(self, ensure_blas: Callable[[], None]) -> None:
        self._ensure_blas = ensure_blas
        self._found: bool | None = None

    def __bool__(self) -> bool:
        if self._found is None:
            try:
                self._ensure_blas()
                self._found = True
            except ImportError:
                self._found = False
        return self._found


@contextmanager
def _defer_blas_check() -> Iterator[None]:
    """While Numba's arraymath is first imported on this thread, its BLAS check finds nothing;
    then its flag becomes a _BlasFound. Other threads, and a Numba laid out otherwise, see no
    change."""
    linalg = None
    if "numba.np.arraymath" not in sys.modules:
        try:
            linalg = importlib.import_module("numba.np.linalg")
        except ImportError:
            linalg = None
    ensure_blas = getattr(linalg, "ensure_blas", None)
    if ensure_blas is None:
        yield
        return
    caller = threading.get_ident()

    def not_now() -> None:
        if threading.get_ident() == caller:
            raise ImportError("SciPy's BLAS check put off by symgraph")
        ensure_blas()

    linalg.ensure_blas = not_now
    try:
        yield
    finally:
        linalg.ensure_blas = ensure_blas
        arraymath = sys.modules.get("numba.np.arraymath")
        if arraymath is not None and getattr(arraymath, "ensure_blas", None) is not_now:
            arraymath.ensure_blas = ensure_blas
            if getattr(arraymath, "_HAVE_BLAS", None) is False:
                arraymath._HAVE_BLAS = _BlasFound(ensure_blas)
