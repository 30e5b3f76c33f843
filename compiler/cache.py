"""The on-disk kernel cache: generated sources named by a structural hash, jitted with Numba's
own cache beside them, so a second process compiles nothing.

Layout: $SYMGRAPH_CACHE_DIR (default: symgraph.files.user_cache_dir(), ~/.cache/symgraph) /
kernels-<tag> / fused_<n>_<hash8>.py, with Numba's compiled code and the module's Python
bytecode in __pycache__ next to each file. A kernel's name hashes its whole text, so a code
generator that renders a kernel differently names a new file, and an edit to a code generator
recompiles only the kernels whose text changed. What the text does not hold is in the tag: the
symgraph and Numba versions, this file, and the helper modules generated kernels import
(KERNEL_IMPORTS), whose functions Numba compiles into each kernel without tracking their source;
so a stale entry is never loaded. Files are written atomically (temp file + rename); several
processes may fill the cache at once. Directories of other tags (older versions of symgraph,
Numba or the kernels' helpers) that nothing has written to for STALE_DAYS are deleted, once per
process: each upgrade would otherwise leave its compiled kernels behind for good.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import py_compile
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

from compiler.codegen_cpu_startup import load_cached, load_registries
from symgraph.files import user_cache_dir, write_atomically

_memo: dict[str, tuple[str, Any]] = {}  # name -> (its text, its module), loaded in this process
_named: dict[str, str] = {}  # kernel_name's names -> the texts they name
# the modules a generated kernel imports (`from compiler.<module> import ...` in its text): a
# change to one invalidates every cached kernel (read as files: no import, no numba)
KERNEL_IMPORTS = ("codegen_cpu_scalars", "codegen_cpu_tiles", "codegen_cuda_scalars",
                  "codegen_cuda_random")
_lock = threading.Lock()
STALE_DAYS = 14  # a tag directory unwritten this long belongs to no running version: deleted
_pruned: set[Path] = set()  # roots already pruned by this process


def debug_level() -> int:
    """SYMGRAPH_DEBUG: 1 passes and kernel groups, 2 cache hits and misses, 3 kernel source,
    4 the scheduled plan, step by step, with the user's lines behind every kernel."""
    try:
        return int(os.environ.get("SYMGRAPH_DEBUG", "0"))
    except ValueError:
        return 0


def debug(level: int, message: str) -> None:
    if debug_level() >= level:
        print(f"[symgraph] {message}", file=sys.stderr)


def _tag() -> str:
    from importlib.metadata import version

    import symgraph
    h = hashlib.sha256()
    here = Path(__file__).parent
    for module in ("cache", *KERNEL_IMPORTS):
        h.update((here / f"{module}.py").read_bytes())
    return f"{symgraph.__version__}-numba{version('numba')}-{h.hexdigest()[:12]}"


def cache_dir() -> Path:
    root = Path(os.environ.get("SYMGRAPH_CACHE_DIR") or user_cache_dir())
    current = root / f"kernels-{_tag()}"
    if root not in _pruned:
        _pruned.add(root)
        prune_stale(root, current)
    return current


def prune_stale(root: Path, current: Path, days: float = STALE_DAYS) -> list[Path]:
    """Deletes the kernels-* directories under `root`, except `current`, that nothing wrote to
    in `days` (the directory's and its __pycache__'s modification times: adding a kernel or
    Numba's compiled code changes them). Returns what it deleted. A process of an old version
    that still uses one only compiles again what it needs."""
    deleted: list[Path] = []
    cutoff = time.time() - days * 86400
    try:
        entries = list(root.iterdir())
    except OSError:  # no cache yet, or unreadable: nothing to do
        return deleted
    for entry in entries:
        if entry == current or not entry.name.startswith("kernels-") or not entry.is_dir():
            continue
        try:
            written = max(p.stat().st_mtime for p in (entry, entry / "__pycache__")
                          if p.exists())
        except (OSError, ValueError):
            continue
        if written < cutoff:
            shutil.rmtree(entry, ignore_errors=True)
            debug(2, f"kernel cache: deleted {entry.name} (unused for {days:g} days)")
            deleted.append(entry)
    return deleted


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def kernel_name(members: int, source_template: str) -> str:
    """fused_<n>_<hash8>: the same in debug output, tracebacks and the cache. Two texts whose
    digests share their first 8 digits (one chance in ~4e9 a pair) would share the name: the
    second one met in this process is named by 16 digits instead, so that neither is mistaken
    for the other in memory (on disk a file is used only if it holds the very text)."""
    digest = _digest(source_template)
    name = f"fused_{members}_{digest[:8]}"
    with _lock:
        if _named.setdefault(name, source_template) != source_template:
            name = f"fused_{members}_{digest[:16]}"
            _named.setdefault(name, source_template)
    return name


def load_kernel(name: str, source: str) -> Any:
    """The jitted function `name` defined by `source`, from memory, disk, or a fresh compile."""
    return getattr(load_module(name, source), name)


def load_module(name: str, source: str) -> Any:
    """The module `name` (a kernel source, maybe of several functions), from memory, disk, or
    a fresh import that compiles its functions (or takes them from Numba's cache)."""
    with _lock:
        if name in _memo:
            known, module = _memo[name]
            if known != source:  # names come from digests of the text: never two texts
                raise RuntimeError(f"symgraph: two kernel texts named {name} (please report)")
            debug(2, f"cache hit: {name} (in memory)")
            debug(3, f"source of {name}:\n{source}")
            return module
        directory = cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.py"
        if path.exists() and path.read_text() == source:
            if debug_level() >= 2:
                warm = (directory / "__pycache__").exists() and any(
                    p.name.startswith(name) for p in (directory / "__pycache__").iterdir())
                debug(2, f"cache hit: {name}" + ("" if warm else " (source only: compiling)"))
            _write_bytecode(path, fresh=False)
        else:
            reason = "not in the cache" if not path.exists() else "differs on disk"
            debug(2, f"cache miss: {name} ({reason}): {path}")
            write_atomically(path, source)
            _write_bytecode(path, fresh=True)
        debug(3, f"source of {name}:\n{source}")
        # registered under a top-level name: Numba's cache re-imports the module by that name
        module_name = f"symgraph_kernel_{name}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        for attr in dir(module):  # the kernels it defines (a fused loop's variants, for cuda
            fn = getattr(module, attr)  # its reduction and finish kernels, the nn loops)
            if getattr(getattr(fn, "py_func", None), "__module__", None) == module_name:
                _tolerate_corrupt_entries(fn, attr)
        _memo[name] = (source, module)
        return module


def _write_bytecode(path: Path, fresh: bool) -> None:
    """Python's bytecode of a kernel module, beside Numba's code in __pycache__, even where
    PYTHONDONTWRITEBYTECODE is set (it is on some machines, this project's own among them):
    the cache is ours, and without it every process parsed and compiled each kernel's source
    again (~1-2 ms a kernel, 17 ms of W1's warm first step). `fresh`: the source was just
    (re)written, so any bytecode there is stale. Written atomically by py_compile."""
    if not sys.dont_write_bytecode:
        return  # the import below writes it
    cfile = importlib.util.cache_from_source(str(path))
    if fresh or not os.path.exists(cfile):
        with contextlib.suppress(OSError, py_compile.PyCompileError):
            py_compile.compile(str(path), cfile=cfile, doraise=True)


def _tolerate_corrupt_entries(fn: Any, name: str) -> None:
    """Numba's own cache files beside a kernel (an index and the machine code, pickled by
    Numba) may be truncated or corrupt (a full disk, a crash, a hand edit). Numba would raise
    on the first call; instead such an entry counts as a miss: the kernel compiles again and
    Numba's next save replaces the files. Entries load without Numba's registries
    (codegen_cpu_startup.load_cached)."""
    numba_cache = getattr(fn, "_cache", None)
    if numba_cache is None or not hasattr(numba_cache, "load_overload"):
        return
    load, save = numba_cache.load_overload, numba_cache.save_overload

    def load_overload(sig: Any, target_context: Any) -> Any:
        try:
            return load_cached(numba_cache, load, sig, target_context)
        except Exception as e:  # noqa: BLE001 - whatever a damaged file makes unpickling raise
            debug(2, f"cache miss: {name} (Numba's cache entry is unreadable: "
                     f"{type(e).__name__}): compiling again")
            load_registries()
            return None

    def save_overload(sig: Any, data: Any) -> None:
        try:
            save(sig, data)
        except Exception:  # noqa: BLE001 - the damaged index it merges into: start it afresh
            index = getattr(getattr(numba_cache, "_cache_file", None), "_index_path", None)
            if index is not None and os.path.exists(index):
                os.remove(index)
                with contextlib.suppress(Exception):
                    save(sig, data)

    numba_cache.load_overload = load_overload
    numba_cache.save_overload = save_overload
