"""CPU kernels for convolution and pooling (NHWC values, HWIO filters), forward and backward,
and for the sparse softmax cross-entropy (a row loop: as NumPy's dozen calls it took 0.12 ms of
W1's ~3.8 ms step, as a kernel 0.04 ms). Softmax itself stays NumPy's: a training step's
gradients start from it, and a kernel's last-bit differences (its own exp and sums) grew, over
five Adam steps, past the 1e-5 agreement with the reference that tests/test_differential.py asks.

Each conv2d / pooling node of a cpu plan becomes one Kernel step (the shape the executor runs;
see codegen_cpu.Kernel). Two ways to convolve:
- Register tiles (codegen_cpu_tiles), for float32 with outputs in whole vectors, a window
  wider than 1x1 and no dilation: the forward and the filter gradient read the padded input
  directly, and the input gradient at stride 1 is the forward of the padded gradient with the
  filters turned. On W3's second layer each of the three took ~2.1-2.2 ms on two threads,
  against 2.6-4.0 ms for im2col + OpenBLAS; W3's step went from ~17 to ~14.5 ms.
- im2col + GEMM for the rest: the Numba loop in codegen_cpu_nn_kernels lays the input's patches
  out as rows, NumPy's matmul (BLAS) multiplies them by the filters, and col2im sums the patch
  gradients back for the input gradient; a 1x1 filter at stride 1 needs neither. Even with one
  input channel (W3's first layer, K = 9) this beat a direct loop (1.7 ms against 2.5 ms for
  64x28x28x1 -> 32, one core). The GEMM is NumPy's (numba's np.dot would need SciPy, which
  symgraph does not require).
Pooling is a direct loop.

Threads: one budget, the cores this process may use. BLAS runs its own threads (set by
OPENBLAS_NUM_THREADS). The tiles, and the pooling loops from SPLIT_MIN values, run in parts on
Python threads (run_in_parts; the loops release the GIL): the forward by runs of output rows
(whole images for an even batch), the pools and the filter gradient by whole images (a dw per
thread, added), so that each core mostly reads the values it wrote. OpenBLAS's workers are
told to stop spinning soon after each call (quiet_blas_workers): a spinning worker took a core
from them.
Parts need no parallel (`prange`) compile: the serial loops serve both. im2col and col2im run
on Numba's threads (`prange`) only from PARALLEL_MIN values. A plan's steps run one after
another, so a parallel loop and a BLAS call never run at the same time and each may use the
whole budget (compiler.codegen_cpu_threads sets the budget up). Splitting W3's GEMMs over two
Python threads with one-threaded BLAS made them slower: not done.
"""
from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from compiler import cache, codegen_cpu_tiles
from compiler.codegen_cpu import Kernel
from compiler.codegen_cpu_threads import (
    run_in_parts,
    thread_budget,
    use_thread_budget,
)
from symgraph.graph import Node
from symgraph.ops.nn import window

SOURCE = Path(__file__).with_name("codegen_cpu_nn_kernels.py")
DTYPES = ("float32", "float64")
# Elements a loop must touch before it runs on threads (8M: 32 MB of float32): memory-bound
# loops gained nothing measurable from two threads at 1-4M elements (see the module docstring).
PARALLEL_MIN = 1 << 23
SHALLOW = 8  # input channels under which im2col writes its columns transposed (im2col_shallow)
# Bytes of patch columns a deep convolution lays out and multiplies at a time, whole images per
# piece: the GEMM reads them while they are still in cache. On W3's second layer (64x14x14x32
# -> 64) pieces of ~3.5 MB took the forward from 3.45-3.5 to 3.15-3.2 ms and the input
# gradient from 3.0 to 2.9; pieces of 1.8 MB or 7 MB gained less.
PIECE_BYTES = 4 << 20
# Multiply-adds from which a register-tiled convolution runs on the thread budget: ~0.3 ms of
# one core's work, ten times the cost of handing a part to the other thread.
TILE_PARALLEL_MIN = 1 << 24
# Values from which a pooling loop runs in parts (whole images) on the thread budget: W3's pools
# and their gradients (0.4-1.6M values of float32) took 0.6-0.9 ms less a step on two threads.
SPLIT_MIN = 1 << 19


@functools.cache  # once per process: not a file read and hash per call
def _load(parallel: bool) -> ModuleType:
    """The loops, serial or parallel, from a copy of SOURCE in the kernel cache (compiled by
    Numba on first call per dtype, then taken from the cache beside the copy)."""
    text = SOURCE.read_text()
    if parallel:
        text = text.replace("\nPARALLEL = False", "\nPARALLEL = True", 1)
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return cache.load_module(f"nn_{'parallel' if parallel else 'serial'}_{digest}", text)


def loops(size: int) -> ModuleType:
    """The serial loops, or the parallel ones on the whole thread budget for big work."""
    if size >= PARALLEL_MIN and use_thread_budget():
        return _load(True)
    return _load(False)


def by_images(fn: Callable[[int, int], Any], images: int, size: int) -> None:
    """fn(first, last) over the images [0, images) of a memory-bound loop over `size` values:
    in parts on the thread budget from SPLIT_MIN values, else at once."""
    if size >= SPLIT_MIN and thread_budget() > 1:
        run_in_parts(fn, images)
    else:
        fn(0, images)


def in_parts(fn: Callable[[int, int], Any], total: int, products: int) -> None:
    """fn(first, last) over [0, total): on the thread budget (run_in_parts) for `products`
    multiply-adds from TILE_PARALLEL_MIN (compute-bound work: two threads take half the
    time), else at once on this thread."""
    if products >= TILE_PARALLEL_MIN and thread_budget() > 1:
        run_in_parts(fn, total)
    else:
        fn(0, total)


# ---- geometry --------------------------------------------------------------------------------


def _input(a: Any, dtype: np.dtype) -> np.ndarray:
    """A value as the loops read it: C-contiguous, of the node's dtype, and read-only. Kernel
    outputs come read-only (runtime/executor.py), other values writable; Numba compiles one
    version per combination, so every input is made a read-only view (no copy): one version."""
    a = np.ascontiguousarray(a, dtype)
    if a.flags.writeable:
        a = a.view()
        a.setflags(write=False)
    return a


def _need(ok: bool, what: str) -> None:
    """Run-time shapes the loops cannot take: ValueError makes the executor run the node by its
    reference function, which raises the error that names the user's op. (The loops do not
    check bounds: nothing reaches them unchecked.)"""
    if not ok:
        raise ValueError(what)


# ---- convolution: im2col + GEMM ------------------------------------------------------------------


class _HandOver:
    """What a forward kernel computed from one input value, handed to the backward kernel of
    the same input and geometry later in the same run: a convolution's im2col columns (see
    share_patches), a max pool's winning taps (see share_winners). The value is known by
    identity: a run's values are new arrays that nothing writes to, so the same object in the
    same run holds the same numbers; a different object (the next run) gets nothing."""

    __slots__ = ("source", "value")

    def __init__(self) -> None:
        self.source: Any = None
        self.value: np.ndarray | None = None

    def put(self, source: Any, value: np.ndarray) -> None:
        self.source, self.value = source, value

    def take(self, source: Any, shape: tuple) -> np.ndarray | None:
        """What was computed from `source`, if it is here (and of `shape`); the slot is
        emptied, so that it is not held past its one reader."""
        value = self.value if self.source is source else None
        self.source = self.value = None
        return value if value is not None and value.shape == shape else None


def share_patches(kernels: Sequence[Any]) -> None:
    """Pairs each convolution with the filter gradient of the same input value, geometry and
    filter shape in one plan: the gradient then reuses the forward's im2col columns instead of
    building them again (on W3, 0.5-0.6 ms a layer of a ~20 ms step). The columns stay alive
    from the forward to the backward pass: memory for time, as the values of autodiff do (the
    plan's memory report counts them, see temporaries)."""
    forward: dict[tuple, _Conv] = {}
    backward: dict[tuple, _Conv] = {}
    for kernel in kernels:
        conv = getattr(getattr(kernel, "fn", None), "conv", None)
        if conv is None:
            continue
        node = kernel.members[0]
        side = {"conv2d": forward, "conv2d_filter_grad": backward}.get(node.opdef.name)
        if side is None:
            continue
        filt = node.inputs[1 if side is forward else 2].shape
        key = (node.inputs[0].node.id, conv.strides, conv.dilations, conv.padding,
               tuple(filt) if filt.rank is not None else None)
        side.setdefault(key, conv)
    for key, conv in forward.items():
        if key in backward:
            conv.patches = backward[key].patches = _HandOver()


class _Conv:
    """One convolution geometry (static attrs) and its run-time im2col / col2im."""

    def __init__(self, attrs: dict, dtype: np.dtype) -> None:
        self.strides = tuple(attrs["strides"])
        self.dilations = tuple(attrs["dilations"])
        self.padding = attrs["padding"]
        self.dtype = dtype
        self.patches: _HandOver | None = None  # shared with the partner kernel (share_patches)

    def geometry(self, x_shape: tuple, w_shape: tuple) -> tuple[int, int, int, int]:
        _need(len(x_shape) == 4 and len(w_shape) == 4 and x_shape[3] == w_shape[2],
              "input channels differ from the filters'")
        return window(x_shape[1], x_shape[2], w_shape[0], w_shape[1], self.strides,
                       self.dilations, self.padding)

    def tiled(self, o: int, w_shape: tuple) -> bool:
        """Whether codegen_cpu_tiles' register tiles compute a convolution into o outputs:
        float32, no dilation, o in whole vectors, and a window wider than one pixel (a 1x1
        filter at stride 1 is one GEMM on the input as it is). Any number of input channels:
        on W3's first layer (64x28x28x1 -> 32) the forward took 0.38 ms, against 0.82 for
        im2col + GEMM."""
        return (self.dtype == np.float32 and self.dilations == (1, 1)
                and o % codegen_cpu_tiles.NARROW == 0 and not self.pointwise(w_shape))

    def padded_shape(self, w_shape: tuple, geometry: tuple) -> tuple[int, int]:
        """(rows, columns) of the padded input the tiles read: what the windows cover."""
        oh, ow = geometry[:2]
        return (oh - 1) * self.strides[0] + w_shape[0], (ow - 1) * self.strides[1] + w_shape[1]

    def padded(self, x: np.ndarray, w_shape: tuple, geometry: tuple) -> np.ndarray:
        """x padded for the tiles (conv_tiles, conv_filter_grad_tiles), flat, with their slack."""
        hp, wp = self.padded_shape(w_shape, geometry)
        return _pad(x, geometry[2], geometry[3], hp, wp, self.strides[1] * x.shape[3])

    def pointwise(self, w_shape: tuple) -> bool:
        """A 1x1 filter at stride 1: the patches are the input itself (no copy)."""
        return w_shape[0] == w_shape[1] == 1 and self.strides == (1, 1)

    def _args(self, w_shape: tuple, geometry: tuple) -> tuple:
        oh, ow, top, left = geometry
        return (*w_shape[:2], *self.strides, *self.dilations, top, left, oh, ow)

    def im2col(self, x: np.ndarray, w_shape: tuple, geometry: tuple,
               then: Callable[[slice, np.ndarray], Any] | None = None) -> np.ndarray:
        """(N oh ow, kh kw C) patches of x, tap-major like w.reshape(kh kw C, O). For a shallow
        input it is the transpose of a C-contiguous array (see im2col_shallow): BLAS takes
        either layout without a copy. A deep input's are laid out in pieces of whole images
        (PIECE_BYTES), `then(rows, piece)` called on each while it is in cache."""
        n, c = x.shape[0], x.shape[3]
        kh, kw = w_shape[:2]
        if self.pointwise(w_shape):
            cols = x.reshape(-1, c)
            if then is not None:
                then(slice(None), cols)
            return cols
        oh, ow = geometry[:2]
        args = self._args(w_shape, geometry)
        if c < SHALLOW:
            cols_t = np.empty((kh * kw * c, n * oh * ow), self.dtype)
            loops(cols_t.size).im2col_shallow(x, *args, cols_t)
            if then is not None:
                then(slice(None), cols_t.T)
            return cols_t.T
        cols = np.empty((n * oh * ow, kh * kw * c), self.dtype)
        per = oh * ow
        for first, last in _pieces(n, per * kh * kw * c * self.dtype.itemsize):
            rows = slice(first * per, last * per)
            loops(cols.size).im2col(x[first:last], *args, cols[rows])
            if then is not None:
                then(rows, cols[rows])
        return cols

    def col2im(self, dcols: Callable[[slice, np.ndarray | None], np.ndarray], x_shape: tuple,
               w_shape: tuple, geometry: tuple) -> np.ndarray:
        """The adjoint of im2col: patch gradients summed back onto the input's positions.
        `dcols(rows, out)` computes the patch gradients of those rows (into `out`, a buffer of
        the piece's size, where given), a piece of whole images at a time (PIECE_BYTES)."""
        if self.pointwise(w_shape):
            return dcols(slice(None), None).reshape(x_shape)
        oh, ow = geometry[:2]
        per, width = oh * ow, w_shape[0] * w_shape[1] * x_shape[3]
        dx = np.empty(x_shape, self.dtype)
        pieces = _pieces(x_shape[0], per * width * self.dtype.itemsize)
        buffer = np.empty(((pieces[0][1] - pieces[0][0]) * per, width), self.dtype)
        for first, last in pieces:
            out = buffer[:(last - first) * per]
            dcols(slice(first * per, last * per), out)
            out = out.view()
            out.setflags(write=False)  # the loops see read-only inputs: one compiled version
            loops(x_shape[0] * per * width).col2im(out, *self._args(w_shape, geometry),
                                                   dx[first:last])
        return dx


def _pad(x: np.ndarray, top: int, left: int, hp: int, wp: int, row: int) -> np.ndarray:
    """x (NHWC) placed at (top, left) in zeros of hp x wp pixels, as a flat buffer followed by
    the values a tile may read past its last row (SLACK rows of `row` values, plus SLACK)."""
    n, h, w, c = x.shape
    _need(top >= 0 and left >= 0, "negative padding")
    size = n * hp * wp * c
    flat = np.zeros(size + codegen_cpu_tiles.SLACK * (row + 1), x.dtype)
    grid = flat[:size].reshape(n, hp, wp, c)
    r1, s1 = min(top + h, hp), min(left + w, wp)
    if top < r1 and left < s1:
        grid[:, top:r1, left:s1] = x[:, :r1 - top, :s1 - left]
    return flat


def _pieces(n: int, image_bytes: int) -> list[tuple[int, int]]:
    """[first, last) ranges of whole images, each about PIECE_BYTES of patch columns."""
    step = max(1, PIECE_BYTES // max(image_bytes, 1))
    return [(first, min(first + step, n)) for first in range(0, n, step)] or [(0, 0)]


def _conv2d(attrs: dict, dtype: np.dtype) -> Callable[..., tuple]:
    conv = _Conv(attrs, dtype)

    def conv2d(source: np.ndarray, w: np.ndarray,
               then: Callable[[np.ndarray], Any] | None = None) -> tuple:
        """`then(block)`, where given, is called on each block of y (a writable view of whole
        output rows, (rows, 1, ow, o), or of whole images) as soon as it is computed, on the
        thread that computed it: an epilogue's loop then reads it from that core's cache
        (compiler.epilogue, in_place_products)."""
        # y[n, i, j, o] = sum over (a, b, c) of patch(x)[n, i, j, (a, b, c)] w[a, b, c, o]
        x, w = _input(source, dtype), _input(w, dtype)
        geometry = conv.geometry(x.shape, w.shape)
        o = w.shape[3]
        y = np.empty((x.shape[0], geometry[0], geometry[1], o), dtype)
        if conv.tiled(o, w.shape):
            xp = conv.padded(x, w.shape, geometry)
            hp, wp = conv.padded_shape(w.shape, geometry)
            tiles, rows = _load(False).conv_tiles, codegen_cpu_tiles.height(y.shape[2])
            blocks = y.reshape(y.shape[0] * y.shape[1], 1, *y.shape[2:])  # rows (n, i)

            def part(first: int, last: int) -> None:
                tiles(xp, hp, wp, x.shape[3], w, *conv.strides, y, rows, first, last)
                if then is not None and first < last:
                    then(blocks[first:last])

            in_parts(part, y.shape[0] * y.shape[1],
                     y.size * w.shape[0] * w.shape[1] * x.shape[3])
            if conv.patches is not None:  # the filter gradient reads the same padded input
                conv.patches.put(source, xp)
            return (y,)
        filters, products = w.reshape(-1, o), y.reshape(-1, o)

        def gemm(rows: slice, piece: np.ndarray) -> None:  # a piece of whole images
            np.matmul(piece, filters, out=products[rows])
            if then is not None and products[rows].size:
                then(products[rows].reshape(-1, *y.shape[1:]))

        cols = conv.im2col(x, w.shape, geometry, gemm)
        if conv.patches is not None:
            conv.patches.put(source, cols)
        return (y,)

    conv2d.conv = conv  # type: ignore[attr-defined]  (share_patches finds it)
    return conv2d


def _conv2d_input_grad(attrs: dict, dtype: np.dtype) -> Callable[..., tuple]:
    conv = _Conv(attrs, dtype)

    def conv2d_input_grad(g: np.ndarray, w: np.ndarray, like: np.ndarray) -> tuple:
        # dx = col2im(g @ w^T): each output's gradient flows back through the taps that made it
        g, w = _input(g, dtype), _input(w, dtype)
        geometry = conv.geometry(like.shape, w.shape)
        o = w.shape[3]
        _need(g.shape == (like.shape[0], geometry[0], geometry[1], o), "gradient shape")
        n, h, width, c = like.shape
        if conv.strides == (1, 1) and conv.tiled(c, w.shape):
            # dx is the forward convolution (conv_tiles) of g, padded by the filter's size less
            # the forward's padding, with the filters turned 180 degrees and in and out swapped:
            # dx[n, r, s, k] = sum over (a, b, q) of gp[n, r + a, s + b, q] w[kh-1-a, kw-1-b, k, q]
            kh, kw = w.shape[:2]
            top, left = geometry[2:]
            hp, wp = h + kh - 1, width + kw - 1
            gp = _pad(g, kh - 1 - top, kw - 1 - left, hp, wp, o)
            turned = np.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2))
            turned.setflags(write=False)  # as the forward's filters: one compiled version
            dx = np.empty(like.shape, dtype)
            tiles, rows = _load(False).conv_tiles, codegen_cpu_tiles.height(width)
            in_parts(lambda first, last: tiles(gp, hp, wp, o, turned, 1, 1, dx, rows, first,
                                               last),
                     n * h, dx.size * kh * kw * o)
            return (dx,)
        grads, filters = g.reshape(-1, o), w.reshape(-1, o).T

        def dcols(rows: slice, out: np.ndarray | None) -> np.ndarray:
            return np.matmul(grads[rows], filters, out=out)

        return (conv.col2im(dcols, like.shape, w.shape, geometry),)

    return conv2d_input_grad


def _filter_grad_parts(g_shape: tuple, taps: int) -> int:
    """Parts (whole images each, one per thread) a tiled filter gradient sums apart and then
    adds, or 1: from SPLIT_MIN gradient values or TILE_PARALLEL_MIN multiply-adds, with two
    images or more. Each thread then reads only its own images' input and gradient, as the
    forward tiles and the pools split them: the other core never reads, and so never holds,
    lines that this one writes again the next step (on this machine, a write to a line the other
    core holds cost ~17 ns in a slow spell; README, Benchmarks). W3, side by side in one
    process: 12.83 -> 12.41 ms a step in quiet rounds, 18.25 -> 16.95 ms in slow ones."""
    images, size = g_shape[0], math.prod(g_shape)
    if images < 2 or thread_budget() < 2 or (size < SPLIT_MIN
                                             and size * taps < TILE_PARALLEL_MIN):
        return 1
    return min(thread_budget(), images)


def _conv2d_filter_grad(attrs: dict, dtype: np.dtype) -> Callable[..., tuple]:
    conv = _Conv(attrs, dtype)

    def conv2d_filter_grad(source: np.ndarray, g: np.ndarray, like: np.ndarray) -> tuple:
        # dw[a, b, c, o] = sum over rows (n, i, j) of patch(x)[row, (a, b, c)] g[row, o]
        x, g = _input(source, dtype), _input(g, dtype)
        geometry = conv.geometry(x.shape, like.shape)
        o = like.shape[3]
        _need(g.shape == (x.shape[0], geometry[0], geometry[1], o), "gradient shape")
        if conv.tiled(o, like.shape):
            hp, wp = conv.padded_shape(like.shape, geometry)
            xp = None
            if conv.patches is not None:  # the forward's padded input, if it is this one
                xp = conv.patches.take(source, (x.shape[0] * hp * wp * x.shape[3]
                                                + codegen_cpu_tiles.SLACK
                                                * (conv.strides[1] * x.shape[3] + 1),))
            if x.shape[0] == 0:  # no image: no tile would write dw
                return (np.zeros(like.shape, dtype),)
            if xp is None:
                xp = conv.padded(x, like.shape, geometry)
            dw = np.empty(like.shape, dtype)
            c = x.shape[3]
            kh, run = like.shape[0], like.shape[1] * c  # a window row's (b, k) values
            rows = codegen_cpu_tiles.height(run, codegen_cpu_tiles.FILTER_GRAD_STEP)
            count = _filter_grad_parts(g.shape, kh * run)
            if count > 1:  # by images, a dw each (see _filter_grad_parts)
                by_images = _load(False).conv_filter_grad_images
                parts = [dw] + [np.empty(like.shape, dtype) for _ in range(count - 1)]
                bounds = [x.shape[0] * k // count for k in range(count + 1)]

                def part(first: int, last: int) -> None:  # run_in_parts' parts, in order
                    by_images(xp, hp, wp, c, g, *conv.strides, parts[bounds.index(first)],
                              rows, first, last)

                run_in_parts(part, x.shape[0])
                for other in parts[1:]:
                    dw += other
                return (dw,)
            tiles = _load(False).conv_filter_grad_tiles
            in_parts(lambda first, last: tiles(xp, hp, wp, c, g, *conv.strides, dw, rows,
                                               first, last),
                     kh * -(-run // rows), g.size * kh * run)
            return (dw,)
        cols = None
        if conv.patches is not None:
            kh, kw, c = like.shape[:3]
            cols = conv.patches.take(source, (x.shape[0] * geometry[0] * geometry[1],
                                              kh * kw * c))
        if cols is None:
            cols = conv.im2col(x, like.shape, geometry)
        return (np.matmul(cols.T, g.reshape(-1, o)).reshape(like.shape),)

    conv2d_filter_grad.conv = conv  # type: ignore[attr-defined]
    return conv2d_filter_grad


# ---- pooling: direct loops -----------------------------------------------------------------------


class _Pool:
    """One pooling geometry (static attrs): window, strides, padding."""

    def __init__(self, attrs: dict, dtype: np.dtype) -> None:
        self.ksize = tuple(attrs["ksize"])
        self.strides = tuple(attrs["strides"])
        self.padding = attrs["padding"]
        self.dtype = dtype
        self.neg_inf = dtype.type(-np.inf)  # max pooling's padding, typed: float32 stays float32
        self.winners: _HandOver | None = None  # shared with the partner kernel (share_winners)

    def args(self, x_shape: tuple) -> tuple:
        """(output shape, loop arguments kh, kw, sh, sw, top, left) for an input shape."""
        _need(len(x_shape) == 4, "pooling needs NHWC")
        oh, ow, top, left = window(x_shape[1], x_shape[2], *self.ksize, self.strides, (1, 1),
                                    self.padding)
        return (x_shape[0], oh, ow, x_shape[3]), (*self.ksize, *self.strides, top, left)

    @staticmethod
    def four(x_shape: tuple, shape: tuple, args: tuple) -> bool:
        """Whether every window is 2x2 of stride 2 inside the image (the loops' max_pool_four;
        `shape` and `args` from self.args): no padding before, the last window ends inside."""
        return (tuple(args) == (2, 2, 2, 2, 0, 0) and 2 * shape[1] <= x_shape[1]
                and 2 * shape[2] <= x_shape[2])


def _max_pool2d(attrs: dict, dtype: np.dtype) -> Callable[..., tuple]:
    pool = _Pool(attrs, dtype)

    def max_pool2d(source: np.ndarray) -> tuple:
        x = _input(source, dtype)
        shape, args = pool.args(x.shape)
        y = np.empty(shape, dtype)
        four = pool.four(x.shape, shape, args)
        if pool.winners is None:
            if four:
                run_four = _load(False).max_pool_four
                by_images(lambda a, b: run_four(x[a:b], y[a:b], None), x.shape[0], x.size)
            else:
                run = _load(False).max_pool
                by_images(lambda a, b: run(x[a:b], *args, pool.neg_inf, y[a:b]), x.shape[0],
                          x.size)
        else:  # the gradient of the same input follows: hand it the winning taps
            winners = np.empty(shape, np.uint8)
            if four:
                run_four = _load(False).max_pool_four
                by_images(lambda a, b: run_four(x[a:b], y[a:b], winners[a:b]), x.shape[0],
                          x.size)
            else:
                run = _load(False).max_pool_winners
                by_images(lambda a, b: run(x[a:b], *args, pool.neg_inf, y[a:b], winners[a:b]),
                          x.shape[0], x.size)
            pool.winners.put(source, winners)
        return (y,)

    max_pool2d.pool = pool  # type: ignore[attr-defined]  (share_winners finds it)
    return max_pool2d


def _max_pool2d_grad(attrs: dict, dtype: np.dtype) -> Callable[..., tuple]:
    pool = _Pool(attrs, dtype)

    def max_pool2d_grad(source: np.ndarray, g: np.ndarray) -> tuple:
        x, g = _input(source, dtype), _input(g, dtype)
        shape, args = pool.args(x.shape)
        _need(g.shape == shape, "gradient shape")
        dx = np.empty(x.shape, dtype)
        winners = None if pool.winners is None else pool.winners.take(source, shape)
        if winners is None:
            run = _load(False).max_pool_grad
            by_images(lambda a, b: run(x[a:b], g[a:b], *args, pool.neg_inf, dx[a:b]),
                      x.shape[0], x.size)
        elif pool.four(x.shape, shape, args):
            winners.setflags(write=False)  # read-only inputs: one compiled version
            run_four = _load(False).max_pool_grad_four
            by_images(lambda a, b: run_four(winners[a:b], g[a:b], dx[a:b]), x.shape[0], x.size)
        else:
            winners.setflags(write=False)
            run = _load(False).max_pool_grad_winners
            by_images(lambda a, b: run(winners[a:b], g[a:b], *args, dx[a:b]), x.shape[0],
                      x.size)
        return (dx,)

    max_pool2d_grad.pool = pool  # type: ignore[attr-defined]
    return max_pool2d_grad


def share_winners(kernels: Sequence[Any]) -> None:
    """Pairs each max pool with the gradient of the same input value and geometry in one plan
    (as share_patches pairs convolutions): the pool then records each window's winning tap per
    channel (uint8), and the gradient scatters from those instead of reading the whole input
    again and finding the maxima anew. Windows of more than 256 taps keep both apart."""
    forward: dict[tuple, _Pool] = {}
    backward: dict[tuple, _Pool] = {}
    for kernel in kernels:
        pool = getattr(getattr(kernel, "fn", None), "pool", None)
        if pool is None or pool.ksize[0] * pool.ksize[1] > 256:
            continue
        node = kernel.members[0]
        side = {"max_pool2d": forward, "max_pool2d_grad": backward}.get(node.opdef.name)
        if side is not None:
            key = (node.inputs[0].node.id, pool.ksize, pool.strides, pool.padding)
            side.setdefault(key, pool)
    for key, pool in forward.items():
        if key in backward:
            pool.winners = backward[key].winners = _HandOver()


def _max_pool2d_gather(attrs: dict, dtype: np.dtype) -> Callable[..., tuple]:
    pool = _Pool(attrs, dtype)

    def max_pool2d_gather(x: np.ndarray, h: np.ndarray) -> tuple:
        x, h = _input(x, dtype), _input(h, dtype)
        shape, args = pool.args(x.shape)
        _need(h.shape == x.shape, "gathered values' shape")
        y = np.empty(shape, dtype)
        run = _load(False).max_pool_gather
        by_images(lambda a, b: run(x[a:b], h[a:b], *args, pool.neg_inf, y[a:b]), x.shape[0],
                  x.size)
        return (y,)

    return max_pool2d_gather


def _avg_pool2d(attrs: dict, dtype: np.dtype) -> Callable[..., tuple]:
    pool = _Pool(attrs, dtype)

    def avg_pool2d(x: np.ndarray) -> tuple:
        x = _input(x, dtype)
        shape, args = pool.args(x.shape)
        y = np.empty(shape, dtype)
        run = _load(False).avg_pool
        by_images(lambda a, b: run(x[a:b], *args, y[a:b]), x.shape[0], x.size)
        return (y,)

    return avg_pool2d


def _avg_pool2d_grad(attrs: dict, dtype: np.dtype) -> Callable[..., tuple]:
    pool = _Pool(attrs, dtype)

    def avg_pool2d_grad(g: np.ndarray, like: np.ndarray) -> tuple:
        g = _input(g, dtype)
        shape, args = pool.args(like.shape)
        _need(g.shape == shape, "gradient shape")
        dx = np.empty(like.shape, dtype)
        run = _load(False).avg_pool_grad
        by_images(lambda a, b: run(g[a:b], *args, dx[a:b]), dx.shape[0], dx.size)
        return (dx,)

    return avg_pool2d_grad


# ---- sparse cross-entropy: a row loop ------------------------------------------------------------


def _sparse_softmax_cross_entropy(attrs: dict, dtype: np.dtype) -> Callable[..., tuple]:
    def sparse_softmax_cross_entropy(labels: np.ndarray, logits: np.ndarray) -> tuple:
        logits = _input(logits, dtype)
        labels = np.ascontiguousarray(labels)
        classes = logits.shape[-1] if logits.ndim else 0
        # a label out of range: the reference raises the error that names it
        _need(labels.shape == logits.shape[:-1] and classes > 0
              and (labels.size == 0 or (labels.min() >= 0 and labels.max() < classes)),
              "labels")
        loss = np.empty(labels.shape, dtype)
        _load(False).sparse_cross_entropy_rows(labels.reshape(-1), logits.reshape(-1, classes),
                                               loss.reshape(-1))
        return (loss,)

    return sparse_softmax_cross_entropy


# ---- temporaries, for the plan's memory report -----------------------------------------------


@dataclass(frozen=True)
class Temporaries:
    """Bytes a convolution or max pool kernel allocates besides its output (compiler.memory
    counts them).

    Attributes:
      during: freed when the step ends (im2col columns, the input gradient's patch gradients).
      kept: left alive for a later step: the columns a convolution hands to the filter gradient
        of the same input (share_patches), a max pool's winning taps (share_winners), held
        until that step ends.
      slot: the hand-over both partners hold: the step that takes it frees `kept`.
      takes: whether this step takes its columns from `slot` instead of allocating them.
    """

    during: int = 0
    kept: int = 0
    slot: Any = None
    takes: bool = False


def temporaries(kernel: Any, shapes: Callable[[int], tuple | None]) -> Temporaries:
    """What `kernel` (a step of a cpu plan) allocates beyond its outputs, with `shapes` giving a
    value's concrete shape by node id (None where unknown): a convolution's columns, a max
    pool's winning taps for its gradient (share_winners); other pooling nothing big."""
    pool = getattr(getattr(kernel, "fn", None), "pool", None)
    if pool is not None and pool.winners is not None:  # the winning taps, a byte per output
        x = shapes(kernel.members[0].inputs[0].node.id)
        if kernel.members[0].opdef.name != "max_pool2d":
            return Temporaries(slot=pool.winners, takes=True)
        if x is None or len(x) != 4:
            return Temporaries()
        oh, ow = window(x[1], x[2], *pool.ksize, pool.strides, (1, 1), pool.padding)[:2]
        return Temporaries(kept=x[0] * oh * ow * x[3], slot=pool.winners)
    conv = getattr(getattr(kernel, "fn", None), "conv", None)
    if conv is None:
        return Temporaries()
    node = kernel.members[0]
    x = shapes(node.inputs[0].node.id)
    w = shapes(node.inputs[1 if node.opdef.name == "conv2d" else 2].node.id)
    if node.opdef.name == "conv2d_input_grad":
        x = shapes(node.inputs[2].node.id)
    if x is None or w is None or len(x) != 4 or len(w) != 4 or conv.pointwise(w):
        return Temporaries()
    try:
        oh, ow = conv.geometry(x, w)[:2]
    except ValueError:  # shapes the kernel refuses: its nodes run by their reference functions
        return Temporaries()
    item = conv.dtype.itemsize
    if node.opdef.name == "conv2d_input_grad" and conv.strides == (1, 1) and \
            conv.tiled(w[2], w):  # the padded gradient and the turned filters
        return Temporaries(during=(x[0] * (x[1] + w[0] - 1) * (x[2] + w[1] - 1) * w[3]
                                   + codegen_cpu_tiles.SLACK * (w[3] + 1)
                                   + w[0] * w[1] * w[2] * w[3]) * item)
    if node.opdef.name != "conv2d_input_grad" and conv.tiled(w[3], w):
        hp, wp = conv.padded_shape(w, (oh, ow))  # the padded input, flat with its slack
        padded = (x[0] * hp * wp * x[3]
                  + codegen_cpu_tiles.SLACK * (conv.strides[1] * x[3] + 1)) * item
        sums = 0  # the filter gradient's sums of the other threads' images
        if node.opdef.name == "conv2d_filter_grad":
            sums = (_filter_grad_parts((x[0], oh, ow, w[3]), w[0] * w[1] * w[2]) - 1) \
                * w[0] * w[1] * w[2] * w[3] * item
        if conv.patches is None:
            return Temporaries(during=padded + sums)
        if node.opdef.name == "conv2d":
            return Temporaries(kept=padded, slot=conv.patches)
        return Temporaries(during=sums, slot=conv.patches, takes=True)
    cols = x[0] * oh * ow * w[0] * w[1] * w[2] * item
    if node.opdef.name == "conv2d_input_grad":  # a piece's patch gradients at a time
        image = cols // max(x[0], 1)
        return Temporaries(during=min(cols, image * max(1, PIECE_BYTES // max(image, 1))))
    if conv.patches is None:
        return Temporaries(during=cols)
    if node.opdef.name == "conv2d":
        return Temporaries(kept=cols, slot=conv.patches)
    return Temporaries(slot=conv.patches, takes=True)


# op name -> (static attrs, dtype) -> fn(*input values) -> (output,)
BUILDERS: dict[str, Callable[[dict, np.dtype], Callable[..., tuple]]] = {
    "conv2d": _conv2d,
    "conv2d_input_grad": _conv2d_input_grad,
    "conv2d_filter_grad": _conv2d_filter_grad,
    "max_pool2d": _max_pool2d,
    "max_pool2d_grad": _max_pool2d_grad,
    "max_pool2d_gather": _max_pool2d_gather,
    "avg_pool2d": _avg_pool2d,
    "avg_pool2d_grad": _avg_pool2d_grad,
    "sparse_softmax_cross_entropy": _sparse_softmax_cross_entropy,
}


def compile_node(node: Node) -> Kernel | None:
    """A Kernel computing a convolution, pooling or sparse cross-entropy node with the loops
    above, or None for other ops and dtypes (float16: the node keeps its reference function)."""
    build = BUILDERS.get(node.opdef.name)
    if build is None or node.dtype.np.name not in DTYPES or \
            any(t.dtype != node.dtype for t in node.inputs if t.dtype.np.kind == "f"):
        return None  # (the cross-entropy's labels are integers)
    attrs = {k: v for k, v in node.attrs.items()}
    key = repr((node.opdef.name, node.dtype.np.name, sorted(attrs.items())))
    name = f"{node.opdef.name}_{hashlib.sha256(key.encode()).hexdigest()[:8]}"
    fn: Any = build(attrs, np.dtype(node.dtype.np))
    return Kernel(name, fn, tuple(t.node.id for t in node.inputs), (node.id,), (node,))
