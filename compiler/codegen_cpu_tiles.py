"""Register tiles: the inner loop of the float32 convolutions, emitted as LLVM vector code.

A convolution is a sum of products over (tap, channel) for every (pixel, output channel). The
fast way to compute it keeps a tile of sums (ROWS pixels by two vectors of output channels) in
registers for the whole sum: each step loads one vector pair of filter values, broadcasts one
input value per pixel, and does 2 ROWS fused multiply-adds. A Numba loop cannot say this: LLVM
does not keep an array of sums in registers across the loop (it stores and reloads them, or
does not vectorize), so the kernels here are written as LLVM IR through a Numba intrinsic, with
`<VECTOR x float>` values carried by the loop's phi nodes. On W3's second layer (64x14x14x32 ->
64, 3x3) the forward took 2.0-2.3 ms on two threads (200-226 GFLOP/s), against 3.7-3.9 ms for
im2col + OpenBLAS's GEMM and ~2.2 ms for PyTorch's oneDNN convolution on the same machine.

`tile(a, a_row, a_outer, a_inner, n_outer, n_inner, b, b_outer, b_inner, c, ldc, rows, acc)`
(tile_short: SHORT rows) computes, for r < rows and the channels k of its vectors,

    c[r ldc + k] (+)= sum over q < n_outer, m < n_inner of
                      a[r a_row + q a_outer + m a_inner] * b[q b_outer + m b_inner + k]

where a, b and c are addresses (bytes; float32 elements, strides in elements) and `acc` says
whether c's values are added to (1) or replaced (0). Rows from `rows` to ROWS are computed and
thrown away: their `a` values are read, so the caller's `a` buffer must extend ROWS a_row
elements past the last row it uses (SLACK). The sums run in float32, in the order of q and m,
as a GEMM's do.
"""

from __future__ import annotations

import llvmlite.binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_F32 = ir.FloatType()


def _vector_registers() -> tuple[int, int]:
    """(float32 lanes per vector register, vector registers) of the CPU Numba compiles for."""
    if config.CPU_NAME and not config.CPU_FEATURES:
        features = ""  # NUMBA_CPU_NAME (e.g. generic, for a portable cache): assume the least
    else:
        features = config.CPU_FEATURES or llvm_binding.get_host_cpu_features().flatten()
    triple = llvm_binding.get_process_triple()
    if triple.startswith(("aarch64", "arm64")):
        return 4, 32  # NEON
    if "+avx512f" in features:
        return 16, 32
    if "+avx" in features:
        return 8, 16
    return 4, 16  # SSE


LANES, REGISTERS = _vector_registers()
VECTORS = 2  # output-channel vectors per tile: two loads feed 2 ROWS multiply-adds a step
# pixels (or channels) per tile: the sums, the filter vectors and one broadcast fill the
# registers (AVX-512: 14 rows, 28 sums; AVX2: 6 rows)
ROWS = (REGISTERS - 1 - VECTORS) // VECTORS
# the shorter tile, for row counts ROWS fits badly: 32 channels are 4 tiles of 8 rows, not 3 of
# 14 (a quarter of the work thrown away)
SHORT = 1 << ((ROWS - 1).bit_length() - 1) if ROWS > 1 else 1
WIDE = VECTORS * LANES  # output channels of `tile`
NARROW = LANES  # output channels of `tile_narrow` (what is left after the wide tiles)
SLACK = ROWS  # rows a tile may read past its last one, times its a_row (see the module doc)


def _make_tile(rows_max: int, vectors: int, lanes: int):
    vector = ir.VectorType(_F32, lanes)
    vector_ptr = vector.as_pointer()

    @intrinsic
    def tile(typingctx, a, a_row, a_outer, a_inner, n_outer, n_inner, b, b_outer, b_inner, c,
             ldc, rows, acc):
        sig = types.void(*([types.int64] * 13))

        def codegen(context, builder, signature, args):
            (a, a_row, a_outer, a_inner, n_outer, n_inner, b, b_outer, b_inner, c, ldc, rows,
             acc) = args
            fn = builder.function
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vector, [vector] * 3), f"llvm.fma.v{lanes}f32")
            a = builder.inttoptr(a, _F32.as_pointer())
            b = builder.inttoptr(b, _F32.as_pointer())
            c = builder.inttoptr(c, _F32.as_pointer())
            zero = ir.Constant(vector, [0.0] * lanes)
            splat_mask = ir.Constant(ir.VectorType(_I32, lanes), [0] * lanes)

            def block(name):
                return fn.append_basic_block(f"tile_{name}")

            def c_vector(r, v):
                row = builder.gep(c, [builder.mul(ir.Constant(_I64, r), ldc)])
                return builder.bitcast(builder.gep(row, [ir.Constant(_I64, v * lanes)]),
                                       vector_ptr)

            # the starting sums: c's values (rows < `rows`) when accumulating, else zeros
            accumulate = builder.icmp_signed("!=", acc, ir.Constant(_I64, 0))
            sums = []
            for r in range(rows_max):
                inside = builder.icmp_signed("<", ir.Constant(_I64, r), rows)
                load = builder.and_(accumulate, inside)
                before, loading, joined = builder.block, block(f"load{r}"), block(f"row{r}")
                builder.cbranch(load, loading, joined)
                builder.position_at_end(loading)
                values = [builder.load(c_vector(r, v), align=4) for v in range(vectors)]
                builder.branch(joined)
                builder.position_at_end(joined)
                for v in range(vectors):
                    phi = builder.phi(vector)
                    phi.add_incoming(values[v], loading)
                    phi.add_incoming(zero, before)
                    sums.append(phi)
            outer_check, outer_body = block("outer_check"), block("outer_body")
            inner_check, inner_body = block("inner_check"), block("inner_body")
            outer_latch, done = block("outer_latch"), block("done")
            after_load = builder.block
            builder.branch(outer_check)

            def header(at, entry, entering):
                """A loop's counter (from 0) and sums (from `entering`), as phis at `at`."""
                builder.position_at_end(at)
                counter = builder.phi(_I64)
                counter.add_incoming(ir.Constant(_I64, 0), entry)
                phis = []
                for value in entering:
                    phi = builder.phi(vector)
                    phi.add_incoming(value, entry)
                    phis.append(phi)
                return counter, phis

            q, outer_sums = header(outer_check, after_load, sums)
            builder.cbranch(builder.icmp_signed("<", q, n_outer), outer_body, done)

            builder.position_at_end(outer_body)
            a_q = builder.gep(a, [builder.mul(q, a_outer)])
            b_q = builder.gep(b, [builder.mul(q, b_outer)])
            builder.branch(inner_check)

            m, inner_sums = header(inner_check, outer_body, outer_sums)
            builder.cbranch(builder.icmp_signed("<", m, n_inner), inner_body, outer_latch)

            builder.position_at_end(inner_body)
            b_m = builder.gep(b_q, [builder.mul(m, b_inner)])
            filters = [builder.load(builder.bitcast(
                builder.gep(b_m, [ir.Constant(_I64, v * lanes)]), vector_ptr), align=4)
                for v in range(vectors)]
            a_m = builder.gep(a_q, [builder.mul(m, a_inner)])
            new_sums = []
            for r in range(rows_max):
                value = builder.load(builder.gep(a_m, [builder.mul(ir.Constant(_I64, r), a_row)]),
                                     align=4)
                value = builder.insert_element(ir.Constant(vector, None), value,
                                               ir.Constant(_I32, 0))
                value = builder.shuffle_vector(value, ir.Constant(vector, None), splat_mask)
                for v in range(vectors):
                    new_sums.append(builder.call(fma, [value, filters[v],
                                                       inner_sums[r * vectors + v]]))
            body_end = builder.block
            m.add_incoming(builder.add(m, ir.Constant(_I64, 1)), body_end)
            for k in range(rows_max * vectors):
                inner_sums[k].add_incoming(new_sums[k], body_end)
            builder.branch(inner_check)

            builder.position_at_end(outer_latch)
            q.add_incoming(builder.add(q, ir.Constant(_I64, 1)), outer_latch)
            for k in range(rows_max * vectors):
                outer_sums[k].add_incoming(inner_sums[k], outer_latch)
            builder.branch(outer_check)

            builder.position_at_end(done)
            for r in range(rows_max):
                inside = builder.icmp_signed("<", ir.Constant(_I64, r), rows)
                with builder.if_then(inside):
                    for v in range(vectors):
                        builder.store(outer_sums[r * vectors + v], c_vector(r, v), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return tile


tile = _make_tile(ROWS, VECTORS, LANES)  # WIDE output channels
tile_narrow = _make_tile(ROWS, 1, LANES)  # NARROW output channels
tile_short = _make_tile(SHORT, VECTORS, LANES)
tile_short_narrow = _make_tile(SHORT, 1, LANES)


# What a step of the filter gradient's tiles costs beyond its rows, in rows: their rows are
# consecutive values of one pixel and their sums run over an image row (a few pixels) at a
# time, so a step costs more than its multiply-adds. Fitted on an Intel Xeon (AVX-512, one
# thread, 32 images; 2026-12-01): W3's second layer (a window row of 96 values) took 2.71 ms
# in 12 short tiles and 1.9 ms in 7 tall ones (1.43x; the forward's own rule, fewest rows,
# took the short ones), 192 values 7.1 against 5.2 ms, 3 values (W3's first layer) 0.35
# against 0.40 ms.
FILTER_GRAD_STEP = 3 * ROWS // 2


def height(rows: int, step: int = 0) -> int:
    """The tile height (ROWS or SHORT) that covers `rows` at the least cost, a tile's step
    costing its height plus `step`: with no `step`, the fewest computed rows (the forward's
    steps cost their multiply-adds: on the same Xeon, 64x14x14x32 -> 64 took 1.25 ms in one
    tall tile a row of pixels, 1.41 in two short ones; 7 pixels 0.60 tall, 0.40 short)."""
    def cost(h: int) -> int:
        return -(-rows // h) * (h + step)
    return SHORT if cost(SHORT) < cost(ROWS) else ROWS
