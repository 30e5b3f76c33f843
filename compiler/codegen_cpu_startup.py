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
"""

from __future__ import annotations

import gc
import os
import threading

_lock = threading.Lock()
_done = False


def start_numba() -> None:
    """Imports Numba and loads its registries now (they load at the first kernel otherwise),
    then freezes the collector's view of what is alive (module docstring)."""
    global _done
    with _lock:
        if _done:
            return
        freeze = os.environ.get("SYMGRAPH_GC_FREEZE", "1") != "0"
        paused = freeze and gc.isenabled()
        if paused:
            gc.disable()  # nothing to collect among objects that all stay: frozen below
        try:
            from numba.core.registry import cpu_target

            cpu_target.target_context.refresh()  # what Numba's first compile or load does
            if freeze:
                gc.freeze()
        finally:
            if paused:
                gc.enable()
        _done = True
