"""Numba loops for convolution and pooling on the cpu target (NHWC values, HWIO filters), and
for the sparse softmax cross-entropy, row by row.

This file is the source of the loops, never imported under its own name: codegen_cpu_nn copies
it into the kernel cache ($SYMGRAPH_CACHE_DIR, under a name with its content hash) and imports
the copy, so Numba's compiled code lands beside it, keyed by this text. It is copied twice: as
written (serial) and with PARALLEL = True, where the outer `prange` loops run on Numba's threads.
Every parallel loop writes only its own rows of the output (no `+=` across iterations).

Geometry (output sizes, padding before the input) comes from the caller as arguments, so one
compiled function serves every stride, dilation and padding; output buffers come from the
caller too. Average pooling sums in float64; col2im's sums of a few taps stay in the value's
dtype, as the reference's do. Typed constants (-inf of the dtype) are passed in, so float32
loops stay float32.
"""

import numpy as np
from numba import njit, prange

from compiler.codegen_cpu_tiles import (
    NARROW,
    ROWS,
    WIDE,
    tile,
    tile_narrow,
    tile_short,
    tile_short_narrow,
)

PARALLEL = False  # the loader's parallel copy says True
FLAGS = {"cache": True, "nogil": True, "parallel": PARALLEL, "error_model": "numpy",
         "fastmath": {"contract", "arcp", "nsz", "reassoc"}}  # no nnan: NaN checks stay
# Called inside the loops: nothing to spread, and inlined by Numba (not left to LLVM): a call
# kept the loop around it from vectorizing (W3's first pool, 64x28x28x32, one thread: with its
# winners 0.68 -> 0.21 ms, with the 2x2 path below; its gradient from them 0.60 -> 0.44 ms).
HELPER = {**FLAGS, "parallel": False, "inline": "always"}


@njit(**FLAGS)
def im2col(x, kh, kw, sh, sw, dh, dw, top, left, oh, ow, cols):
    """cols[(n oh + i) ow + j, (a kw + b) C + c] = x[n, i sh + a dh - top, j sw + b dw - left, c],
    0 where that is padding: conv2d(x, w) = cols @ w.reshape(kh kw C, O). Row by row, a tap's
    C channels at a time: for deep inputs (codegen_cpu_nn.SHALLOW channels and more; 0.59 ms
    against 0.95 tap by tap for C = 32: the rows of cols are written far apart that way)."""
    nb, h, w, c = x.shape
    for p in prange(nb * oh):
        n = p // oh
        i = p % oh
        first = p * ow
        for j in range(ow):
            row = first + j
            for a in range(kh):
                r = i * sh + a * dh - top
                for b in range(kw):
                    s = j * sw + b * dw - left
                    base = (a * kw + b) * c
                    if r >= 0 and r < h and s >= 0 and s < w:
                        for k in range(c):
                            cols[row, base + k] = x[n, r, s, k]
                    else:
                        for k in range(c):
                            cols[row, base + k] = 0


@njit(**FLAGS)
def im2col_shallow(x, kh, kw, sh, sw, dh, dw, top, left, oh, ow, cols_t):
    """im2col transposed, for inputs of few channels (under codegen_cpu_nn.SHALLOW):
    cols_t[(a kw + b) C + c, row] is im2col's cols[row, (a kw + b) C + c]. Each of the kh kw C
    rows of cols_t is written in order, over the run of output columns whose input column is
    inside the image (found once, not tested per element). On W3's first layer (64x28x28x1):
    0.55 ms, against 0.69 for cols tap by tap and 1.24 row by row; the filter gradient then
    multiplies cols_t itself, C-contiguous (0.52 against 0.61 ms), and the forward GEMM its
    transpose (the same time)."""
    nb, h, w, c = x.shape
    for p in prange(nb * oh):
        n = p // oh
        i = p % oh
        first = p * ow
        for a in range(kh):
            r = i * sh + a * dh - top
            inside_r = r >= 0 and r < h
            for b in range(kw):
                off = b * dw - left  # input column of output column j: j sw + off
                j0 = min(max(-(off // sw), 0), ow)  # first j with j sw + off >= 0
                j1 = min(max((w - 1 - off) // sw + 1, j0), ow)  # past the last j inside
                if not inside_r:
                    j0 = j1 = ow
                for k in range(c):
                    out = cols_t[(a * kw + b) * c + k]
                    for j in range(j0):
                        out[first + j] = 0
                    for j in range(j0, j1):
                        out[first + j] = x[n, r, j * sw + off, k]
                    for j in range(j1, ow):
                        out[first + j] = 0


@njit(**FLAGS)
def col2im(dcols, kh, kw, sh, sw, dh, dw, top, left, oh, ow, dx):
    """The adjoint of im2col: dx[n, r, s, c] = sum of dcols over the (row, tap) pairs that read
    x[n, r, s, c]. One image per iteration: its sums never meet another's."""
    nb, h, w, c = dx.shape
    for n in prange(nb):
        dx[n] = 0
        for i in range(oh):
            for j in range(ow):
                row = (n * oh + i) * ow + j
                for a in range(kh):
                    r = i * sh + a * dh - top
                    if r < 0 or r >= h:
                        continue
                    for b in range(kw):
                        s = j * sw + b * dw - left
                        if s < 0 or s >= w:
                            continue
                        base = (a * kw + b) * c
                        for k in range(c):
                            dx[n, r, s, k] += dcols[row, base + k]


@njit(**HELPER)
def _tiles(a, a_row, a_outer, a_inner, n_outer, n_inner, b, b_outer, b_inner, c, ldc, rows,
           acc, channels, tall):
    """codegen_cpu_tiles' tiles (ROWS high if `tall`, else SHORT) over `channels` output
    channels (a multiple of NARROW): WIDE of them at a time, then NARROW. Addresses in bytes,
    strides in float32 elements."""
    k = 0
    while k + WIDE <= channels:
        if tall:
            tile(a, a_row, a_outer, a_inner, n_outer, n_inner, b + 4 * k, b_outer, b_inner,
                 c + 4 * k, ldc, rows, acc)
        else:
            tile_short(a, a_row, a_outer, a_inner, n_outer, n_inner, b + 4 * k, b_outer,
                       b_inner, c + 4 * k, ldc, rows, acc)
        k += WIDE
    while k < channels:
        if tall:
            tile_narrow(a, a_row, a_outer, a_inner, n_outer, n_inner, b + 4 * k, b_outer,
                        b_inner, c + 4 * k, ldc, rows, acc)
        else:
            tile_short_narrow(a, a_row, a_outer, a_inner, n_outer, n_inner, b + 4 * k, b_outer,
                              b_inner, c + 4 * k, ldc, rows, acc)
        k += NARROW


@njit(**FLAGS)
def conv_tiles(xp, hp, wp, c, w, sh, sw, y, height, first, last):
    """y[n, i, j, :] = sum over (a, b, k) of xp[n, i sh + a, j sw + b, k] w[a, b, k, :], float32,
    where xp is the input already padded, as a flat buffer of n hp wp c values and the slack a
    tile reads past them (codegen_cpu_tiles.SLACK rows of sw c); w is (kh, kw, c, o) with o a
    multiple of NARROW. `height` (ROWS or SHORT) pixels of an output row at a time: for a
    fixed tap row a, the tile's sum runs over kw c values that lie one after another in xp.
    Output rows (n, i) from `first` to `last` (n oh + i): the caller splits them over threads
    (run_in_parts)."""
    nb, oh, ow, o = y.shape
    kh, kw = w.shape[0], w.shape[1]
    xa, wa, ya = xp.ctypes.data, w.ctypes.data, y.ctypes.data
    for p in range(first, last):
        n = p // oh
        i = p % oh
        start = (n * hp + i * sh) * wp * c  # xp's element at (n, i sh, 0, 0)
        for j in range(0, ow, height):
            _tiles(xa + 4 * (start + j * sw * c), sw * c, wp * c, 1, kh, kw * c, wa, kw * c * o,
                   o, ya + 4 * ((p * ow + j) * o), o, min(height, ow - j), 0, o, height == ROWS)


@njit(**FLAGS)
def conv_filter_grad_tiles(xp, hp, wp, c, g, sh, sw, dw, height, first, last):
    """dw[a, b, k, :] = sum over (n, i, j) of xp[n, i sh + a, j sw + b, k] g[n, i, j, :], float32,
    xp as in conv_tiles (slack: ROWS values), g (n, oh, ow, o) with o a multiple of NARROW. For
    a tap row a, the kw c values (b, k) of a window's row lie one after another in xp and in
    dw[a]: a tile holds `height` (ROWS or SHORT) of them and sums over an image's pixels, adding
    image after image. Tiles (a, run of (b, k)) from `first` to `last` of
    kh ceil(kw c / height): the caller splits them over threads."""
    nb, oh, ow, o = g.shape
    run = dw.shape[1] * c  # kw c
    xa, ga, da = xp.ctypes.data, g.ctypes.data, dw.ctypes.data
    blocks = (run + height - 1) // height
    for t in range(first, last):
        a = t // blocks
        m = (t % blocks) * height
        for n in range(nb):
            _tiles(xa + 4 * ((n * hp + a) * wp * c + m), 1, sh * wp * c, sw * c, oh, ow,
                   ga + 4 * (n * oh * ow * o), ow * o, o, da + 4 * ((a * run + m) * o), o,
                   min(height, run - m), 1 if n > 0 else 0, o, height == ROWS)


@njit(**FLAGS)
def conv_filter_grad_images(xp, hp, wp, c, g, sh, sw, dw, height, first, last):
    """conv_filter_grad_tiles' sums over the images from `first` to `last` only, every tile:
    the caller splits the images over threads, each into a dw of its own, and adds them."""
    nb, oh, ow, o = g.shape
    run = dw.shape[1] * c  # kw c
    xa, ga, da = xp.ctypes.data, g.ctypes.data, dw.ctypes.data
    blocks = (run + height - 1) // height
    for t in range(dw.shape[0] * blocks):
        a = t // blocks
        m = (t % blocks) * height
        for n in range(first, last):
            _tiles(xa + 4 * ((n * hp + a) * wp * c + m), 1, sh * wp * c, sw * c, oh, ow,
                   ga + 4 * (n * oh * ow * o), ow * o, o, da + 4 * ((a * run + m) * o), o,
                   min(height, run - m), 1 if n > first else 0, o, height == ROWS)


@njit(**HELPER)
def _wins(v, m):
    """Whether tap value v replaces the running maximum m: greater, or the first NaN."""
    return (v > m) | ((v != v) & (m == m))


@njit(**HELPER)
def _first_max(x, n, i, j, kh, kw, sh, sw, top, left, neg_inf, m, best):
    """m[c], best[c] = the maximum of x's window (i, j) and its first tap in row-major window
    order, like np.argmax over the taps with -inf padding (a NaN wins at its first tap)."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    for t in range(kh * kw):
        r = i * sh + t // kw - top
        s = j * sw + t % kw - left
        inside = r >= 0 and r < h and s >= 0 and s < w
        if t == 0:
            for k in range(c):
                m[k] = x[n, r, s, k] if inside else neg_inf
                best[k] = 0
        elif inside:
            for k in range(c):
                v = x[n, r, s, k]
                if _wins(v, m[k]):
                    m[k] = v
                    best[k] = t


@njit(**HELPER)
def _max_of_four(x, n, r, s, y, winners, i, j):
    """y[n, i, j, k], winners[n, i, j, k] = the maximum over the 2x2 window at (r, s), inside
    the image, and its first tap in row-major order, as _first_max finds them. Running values
    stay scalars, so the loop over channels vectorizes (see max_pool_winners)."""
    for k in range(x.shape[3]):
        m = x[n, r, s, k]
        t = 0
        v = x[n, r, s + 1, k]
        if _wins(v, m):
            m = v
            t = 1
        v = x[n, r + 1, s, k]
        if _wins(v, m):
            m = v
            t = 2
        v = x[n, r + 1, s + 1, k]
        if _wins(v, m):
            m = v
            t = 3
        y[n, i, j, k] = m
        if winners is not None:  # None: max_pool's call (Numba drops the branch)
            winners[n, i, j, k] = t


@njit(**FLAGS)
def max_pool(x, kh, kw, sh, sw, top, left, neg_inf, y):
    """y[n, i, j, c] = the maximum of x over window (i, j); padding is -inf and never wins, a
    NaN wins at its first tap (the values _first_max gives, without the taps' indices, and
    skipping padded taps instead of testing each element: 2x faster on W3's first pool). A 2x2
    window inside the image takes _max_of_four: W3's first pool 0.37 -> 0.19 ms."""
    nb, h, w, c = x.shape
    oh, ow = y.shape[1], y.shape[2]
    for p in prange(nb * oh):
        n = p // oh
        i = p % oh
        r0 = i * sh - top
        for j in range(ow):
            s0 = j * sw - left
            if kh == 2 and kw == 2 and r0 >= 0 and r0 + 1 < h and s0 >= 0 and s0 + 1 < w:
                _max_of_four(x, n, r0, s0, y, None, i, j)  # a 2x2 window inside the image
                continue
            out = y[n, i, j]
            out[:] = neg_inf
            for a in range(kh):
                r = i * sh + a - top
                if r < 0 or r >= h:
                    continue
                for b in range(kw):
                    s = j * sw + b - left
                    if s < 0 or s >= w:
                        continue
                    tap = x[n, r, s]
                    for k in range(c):
                        v = tap[k]
                        m = out[k]
                        out[k] = v if v > m or (v != v and m == m) else m


@njit(**HELPER)
def _scatter(g, n, i, j, best, kh, kw, sh, sw, top, left, apart, dx):
    """The gradient of window (i, j) to its winners (`best`, a tap per channel): g where a tap
    won and, for windows that never overlap (`apart`), 0 where it did not; overlapping windows
    add into a zeroed image. A padded winner's share is lost."""
    h, w, c = dx.shape[1], dx.shape[2], dx.shape[3]
    for t in range(kh * kw):  # tap by tap: a masked store over channels vectorizes
        r = i * sh + t // kw - top
        s = j * sw + t % kw - left
        if r >= 0 and r < h and s >= 0 and s < w:
            if apart:
                for k in range(c):
                    dx[n, r, s, k] = g[n, i, j, k] if best[k] == t else 0
            else:
                for k in range(c):
                    if best[k] == t:
                        dx[n, r, s, k] += g[n, i, j, k]


@njit(**HELPER)
def _clear(dx, n, kh, kw, sh, sw, top, left, oh, ow, apart):
    """Zeroes what _scatter will not write of image n: all of it for overlapping windows, else
    only the elements in no window (rows and columns the windows skip or miss)."""
    h, w = dx.shape[1], dx.shape[2]
    if not apart:
        dx[n] = 0
        return
    for r in range(h):
        row_in = (r + top) // sh < oh and (r + top) % sh < kh
        for s in range(w):
            if not (row_in and (s + left) // sw < ow and (s + left) % sw < kw):
                dx[n, r, s] = 0


@njit(**FLAGS)
def max_pool_grad(x, g, kh, kw, sh, sw, top, left, neg_inf, dx):
    """dx[n, r, s, c] = sum of g[n, i, j, c] over the windows whose first maximum is (r, s).
    Windows that never overlap (the usual 2x2 stride 2) write each element once, g or 0, and
    only the elements outside every window are zeroed apart: one pass over dx instead of two
    (W3's first pool: 0.73 against 1.07 ms). One image per iteration."""
    nb, c = x.shape[0], x.shape[3]
    oh, ow = g.shape[1], g.shape[2]
    apart = sh >= kh and sw >= kw
    for n in prange(nb):
        m = np.empty(c, x.dtype)
        best = np.empty(c, np.int64)
        _clear(dx, n, kh, kw, sh, sw, top, left, oh, ow, apart)
        for i in range(oh):
            for j in range(ow):
                _first_max(x, n, i, j, kh, kw, sh, sw, top, left, neg_inf, m, best)
                _scatter(g, n, i, j, best, kh, kw, sh, sw, top, left, apart, dx)


@njit(**FLAGS)
def max_pool_winners(x, kh, kw, sh, sw, top, left, neg_inf, y, winners):
    """max_pool, also writing each window's winning tap per channel (uint8, the taps
    _first_max finds) for max_pool_grad_winners: the gradient then reads 1 byte per output
    instead of the whole input (W3's first pool, in isolation, when this was written: 0.56 ms
    against max_pool's 0.36, its gradient 0.52 against 1.0). A 2x2 window inside the image,
    the common pool, takes _max_of_four: 0.20 ms here, gradient 0.43 (HELPER)."""
    nb, h, w, c = x.shape
    oh, ow = y.shape[1], y.shape[2]
    for p in prange(nb * oh):
        n = p // oh
        i = p % oh
        r = i * sh - top
        m = np.empty(c, x.dtype)
        best = np.empty(c, np.int64)
        for j in range(ow):
            s = j * sw - left
            if kh == 2 and kw == 2 and r >= 0 and r + 1 < h and s >= 0 and s + 1 < w:
                _max_of_four(x, n, r, s, y, winners, i, j)  # a 2x2 window inside the image
                continue
            _first_max(x, n, i, j, kh, kw, sh, sw, top, left, neg_inf, m, best)
            for k in range(c):
                y[n, i, j, k] = m[k]
                winners[n, i, j, k] = best[k]


@njit(**FLAGS)
def max_pool_grad_winners(winners, g, kh, kw, sh, sw, top, left, dx):
    """max_pool_grad from the winning taps max_pool_winners wrote (see there)."""
    nb, oh, ow, c = g.shape
    apart = sh >= kh and sw >= kw
    for n in prange(nb):
        best = np.empty(c, np.int64)
        _clear(dx, n, kh, kw, sh, sw, top, left, oh, ow, apart)
        for i in range(oh):
            for j in range(ow):
                for k in range(c):
                    best[k] = winners[n, i, j, k]
                _scatter(g, n, i, j, best, kh, kw, sh, sw, top, left, apart, dx)


@njit(**FLAGS)
def max_pool_four(x, y, winners):
    """max_pool, or max_pool_winners where `winners` is not None, for the common pool: 2x2
    windows of stride 2, every one inside the image (no padding before; VALID, or SAME on an
    even size). One loop of four taps, without the general path's geometry: it compiles in
    ~0.25 s where max_pool_winners takes ~0.7 (a cold first step compiles it), and W3's first
    pool with its winners ran in 0.16 ms against 0.22 on one thread (AMD Zen 4)."""
    oh, ow = y.shape[1], y.shape[2]
    for p in prange(x.shape[0] * oh):
        n = p // oh
        i = p % oh
        for j in range(ow):
            _max_of_four(x, n, 2 * i, 2 * j, y, winners, i, j)


@njit(**FLAGS)
def max_pool_grad_four(winners, g, dx):
    """max_pool_grad_winners for the pools of max_pool_four: each element of dx is written
    once, g where its tap won and 0 elsewhere, and so are the last row and column that no
    window covers on an odd size (VALID). W3's first pool's gradient on one thread: 0.16 ms
    against 0.45 for max_pool_grad_winners (AMD Zen 4; in W3's step, on two threads, the
    two differ by less than the noise)."""
    nb, oh, ow, c = g.shape
    h, w = dx.shape[1], dx.shape[2]
    for n in prange(nb):
        for i in range(oh):
            for j in range(ow):
                for t in range(4):  # tap by tap: a masked store over channels vectorizes
                    r, s = 2 * i + t // 2, 2 * j + t % 2
                    for k in range(c):
                        dx[n, r, s, k] = g[n, i, j, k] if winners[n, i, j, k] == t else 0
            for s in range(2 * ow, w):
                dx[n, 2 * i, s] = 0
                dx[n, 2 * i + 1, s] = 0
        for r in range(2 * oh, h):
            dx[n, r] = 0


@njit(**FLAGS)
def max_pool_gather(x, hv, kh, kw, sh, sw, top, left, neg_inf, y):
    """y[n, i, j, c] = hv at the first maximum of x's window (i, j); 0 where that is padding."""
    nb, c = x.shape[0], x.shape[3]
    h, w = x.shape[1], x.shape[2]
    oh, ow = y.shape[1], y.shape[2]
    for p in prange(nb * oh):
        n = p // oh
        i = p % oh
        m = np.empty(c, x.dtype)
        best = np.empty(c, np.int64)
        for j in range(ow):
            _first_max(x, n, i, j, kh, kw, sh, sw, top, left, neg_inf, m, best)
            out = y[n, i, j]
            out[:] = 0  # where the winner is padding
            for t in range(kh * kw):
                r = i * sh + t // kw - top
                s = j * sw + t % kw - left
                if r >= 0 and r < h and s >= 0 and s < w:
                    for k in range(c):
                        if best[k] == t:
                            out[k] = hv[n, r, s, k]


@njit(**FLAGS)
def avg_pool(x, kh, kw, sh, sw, top, left, y):
    """y[n, i, j, c] = the mean of the real (unpadded) elements of window (i, j), summed in
    float64 and divided by their count, as TF does."""
    nb, h, w, c = x.shape
    oh, ow = y.shape[1], y.shape[2]
    for p in prange(nb * oh):
        n = p // oh
        i = p % oh
        acc = np.empty(c, np.float64)
        r0, r1 = max(i * sh - top, 0), min(i * sh - top + kh, h)
        for j in range(ow):
            s0, s1 = max(j * sw - left, 0), min(j * sw - left + kw, w)
            acc[:] = 0
            for r in range(r0, r1):
                for s in range(s0, s1):
                    for k in range(c):
                        acc[k] += x[n, r, s, k]
            count = (r1 - r0) * (s1 - s0)
            for k in range(c):
                y[n, i, j, k] = acc[k] / count


@njit(**FLAGS)
def avg_pool_grad(g, kh, kw, sh, sw, top, left, dx):
    """The adjoint of avg_pool: each g[n, i, j, c] / count goes to every real element of its
    window (the share rounded to the dtype first, as the reference does). One image per
    iteration: overlapping windows meet only within it."""
    nb, h, w, c = dx.shape
    oh, ow = g.shape[1], g.shape[2]
    for n in prange(nb):
        share = np.empty(c, dx.dtype)
        dx[n] = 0
        for i in range(oh):
            r0, r1 = max(i * sh - top, 0), min(i * sh - top + kh, h)
            for j in range(ow):
                s0, s1 = max(j * sw - left, 0), min(j * sw - left + kw, w)
                count = (r1 - r0) * (s1 - s0)
                for k in range(c):
                    share[k] = g[n, i, j, k] / count
                for r in range(r0, r1):
                    for s in range(s0, s1):
                        for k in range(c):
                            dx[n, r, s, k] += share[k]


# ---- sparse softmax cross-entropy, row by row ------------------------------------------------


@njit(**HELPER)
def _row_max(x, r, k):
    """The row's maximum, NaN if it holds one (as np.max)."""
    m = x[r, 0]
    for j in range(1, k):
        v = x[r, j]
        if v > m or v != v:
            if m == m:
                m = v
    return m


@njit(**FLAGS)
def sparse_cross_entropy_rows(labels, x, loss):
    """loss[r] = -log_softmax(x[r])[labels[r]], for x (rows, k), k >= 1, labels in range: the
    sum of exp(x - max) in float64."""
    rows, k = x.shape
    for r in range(rows):
        m = _row_max(x, r, k)
        total = 0.0
        for j in range(k):
            total += np.exp(x[r, j] - m)
        loss[r] = np.log(total) - (x[r, labels[r]] - m)
