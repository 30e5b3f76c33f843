"""codegen_cpu_tiles: the register tile computes its documented sum, for both widths, every
number of rows kept, with and without adding to what is there, and with strides in all three
of its directions (tests/test_nn_kernels.py checks the convolutions built on it)."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from compiler.codegen_cpu_tiles import (
    NARROW,
    ROWS,
    SHORT,
    WIDE,
    tile,
    tile_narrow,
    tile_short,
    tile_short_narrow,
)


@njit(cache=False)
def _run(a, a_row, a_outer, a_inner, n_outer, n_inner, b, b_outer, b_inner, c, ldc, rows, acc,
         narrow, short):
    args = (a.ctypes.data, a_row, a_outer, a_inner, n_outer, n_inner, b.ctypes.data, b_outer,
            b_inner, c.ctypes.data, ldc, rows, acc)
    if short:
        if narrow:
            tile_short_narrow(*args)
        else:
            tile_short(*args)
    elif narrow:
        tile_narrow(*args)
    else:
        tile(*args)


@pytest.mark.parametrize("short", [False, True])
@pytest.mark.parametrize("narrow", [False, True])
@pytest.mark.parametrize("rows", ["all", "all but one", 1])
@pytest.mark.parametrize("acc", [0, 1])
def test_the_tile_computes_its_sum(short, narrow, rows, acc):
    height = SHORT if short else ROWS
    rows = {"all": height, "all but one": height - 1}.get(rows, rows)
    rng = np.random.default_rng(rows * 2 + acc)
    width = NARROW if narrow else WIDE
    a_row, a_outer, a_inner, n_outer, n_inner = 3, 41, 2, 3, 5  # a: r 3 + q 41 + m 2
    b_outer, b_inner, ldc = 7 * width, width + 3, width + 5
    a = rng.standard_normal(ROWS * a_row + n_outer * a_outer + n_inner * a_inner
                            ).astype(np.float32)
    b = rng.standard_normal(n_outer * b_outer + n_inner * b_inner + width).astype(np.float32)
    c0 = rng.standard_normal(ROWS * ldc).astype(np.float32)
    c = c0.copy()
    _run(a, a_row, a_outer, a_inner, n_outer, n_inner, b, b_outer, b_inner, c, ldc, rows, acc,
         narrow, short)
    want = c0.astype(np.float64)
    for r in range(rows):
        total = np.zeros(width)
        for q in range(n_outer):
            for m in range(n_inner):
                start = q * b_outer + m * b_inner
                total += float(a[r * a_row + q * a_outer + m * a_inner]) * \
                    b[start:start + width].astype(np.float64)
        want[r * ldc:r * ldc + width] = total + (want[r * ldc:r * ldc + width] if acc else 0)
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(c[rows * ldc:], c0[rows * ldc:])  # rows past `rows`: untouched
    for r in range(rows):  # between a row's channels and the next row: untouched
        np.testing.assert_array_equal(c[r * ldc + width:(r + 1) * ldc],
                                      c0[r * ldc + width:(r + 1) * ldc])


def test_the_short_tile_is_taken_where_it_wastes_fewer_rows():
    from compiler.codegen_cpu_tiles import SHORT, height

    assert SHORT < ROWS
    assert height(ROWS) == ROWS and height(2 * ROWS) == ROWS
    assert height(SHORT) == SHORT and height(4 * SHORT) == (SHORT if 4 * SHORT % ROWS else ROWS)


def test_the_filter_gradient_takes_the_tall_tile_unless_one_short_tile_covers_it():
    """Its steps cost more than their rows (codegen_cpu_tiles.FILTER_GRAD_STEP): W3's second
    layer sums runs of 96 values, where 12 short tiles took 1.43x as long as 7 tall ones."""
    from compiler.codegen_cpu_tiles import FILTER_GRAD_STEP, SHORT, height

    assert height(3, FILTER_GRAD_STEP) == SHORT  # W3's first layer: a window row of 3 values
    assert height(SHORT, FILTER_GRAD_STEP) == SHORT
    assert height(12 * SHORT, FILTER_GRAD_STEP) == ROWS
    assert height(2 * SHORT + 1, FILTER_GRAD_STEP) == ROWS
