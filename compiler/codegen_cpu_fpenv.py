"""The processor's floating-point mode while a cpu plan runs: denormals flushed to zero.

TF1 runs every op kernel, and its thread pools, with denormal results flushed to zero and
denormal inputs read as zero (FTZ and DAZ; tensorflow/core/platform/denormal.h,
ScopedFlushDenormal), and XLA's CPU code the same. Without it, a training loop whose values
shrink into the denormal range (below 1.2e-38 in float32) runs many times slower on processors
that compute them in microcode: on an Intel Xeon here, W1's step went from 2.9 to 7.4 ms after
~2 s of training on one batch, its Adam moments (v ~ g^2 of tiny gradients) having gone
denormal, and back to 3.1 ms once flushed. symgraph's cpu device does what TF1 does, for the
run's thread and the threads that run its parts (codegen_cpu_threads.run_in_parts), and puts
the caller's mode back after the run. Numba's parallel loops and OpenBLAS run on threads of
their own, which keep their mode. The reference device computes as NumPy does.

x86-64 only (the MXCSR register, read and written by two functions that llvmlite compiles
once, ~10 ms); elsewhere nothing is changed.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import platform
import threading
from collections.abc import Callable, Iterator

FLUSH = (1 << 15) | (1 << 6)  # MXCSR's flush-to-zero and denormals-are-zero bits
_engines: list = []  # the JIT engine that owns the two functions' code, kept for the process
_lock = threading.Lock()


@functools.cache
def _mxcsr() -> tuple[Callable[[], int], Callable[[int], None]] | None:
    """(read, write) of this thread's MXCSR, or None on processors without one."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    import llvmlite.binding as llvm
    from llvmlite import ir

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    i32, pointer = ir.IntType(32), ir.IntType(8).as_pointer()
    module = ir.Module("symgraph_fpenv")
    module.triple = llvm.get_process_triple()
    calls = {name: module.declare_intrinsic(
        f"llvm.x86.sse.{name}", fnty=ir.FunctionType(ir.VoidType(), [pointer]))
        for name in ("stmxcsr", "ldmxcsr")}
    read = ir.Function(module, ir.FunctionType(i32, []), "symgraph_read_mxcsr")
    builder = ir.IRBuilder(read.append_basic_block())
    slot = builder.alloca(i32)
    builder.call(calls["stmxcsr"], [builder.bitcast(slot, pointer)])
    builder.ret(builder.load(slot))
    write = ir.Function(module, ir.FunctionType(ir.VoidType(), [i32]), "symgraph_write_mxcsr")
    builder = ir.IRBuilder(write.append_basic_block())
    slot = builder.alloca(i32)
    builder.store(write.args[0], slot)
    builder.call(calls["ldmxcsr"], [builder.bitcast(slot, pointer)])
    builder.ret_void()
    machine = llvm.Target.from_default_triple().create_target_machine()
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(str(module)), machine)
    engine.finalize_object()
    with _lock:
        _engines.append(engine)
    return (ctypes.CFUNCTYPE(ctypes.c_uint32)(engine.get_function_address(read.name)),
            ctypes.CFUNCTYPE(None, ctypes.c_uint32)(engine.get_function_address(write.name)))


def flush_mode() -> int | None:
    """This thread's flush bits (FLUSH, 0 or a part of it), or None where unsupported."""
    access = _mxcsr()
    return None if access is None else access[0]() & FLUSH


def set_flush_mode(bits: int | None) -> int | None:
    """Sets this thread's flush bits to `bits` (None: leaves them); returns the old ones."""
    access = _mxcsr()
    if access is None or bits is None:
        return None
    state = access[0]()
    if state & FLUSH != bits:
        access[1]((state & ~FLUSH) | bits)
    return state & FLUSH


@contextlib.contextmanager
def flushing_denormals(enabled: bool = True) -> Iterator[None]:
    """Runs the block with denormals flushed to zero (or not), then restores the mode."""
    old = set_flush_mode(FLUSH if enabled else 0)
    try:
        yield
    finally:
        set_flush_mode(old)
