"""The vectorizable float32 exp, log and tanh that CPU kernels use, against NumPy in float64,
over the whole float32 range: random bit patterns (so denormals, huge values, inf and nan all
come up), plus the special values."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg

SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1e-40, 1.1754944e-38,
                    3.4028235e38, -3.4028235e38, 88.72283, 88.72284, -87.33655, -103.97, -104.0,
                    0.625, -0.625, 1.0, -1.0, 9.0, -9.0], np.float32)


def _inputs(seed: int) -> np.ndarray:
    bits = np.random.default_rng(seed).integers(0, 2**32, 100_000, dtype=np.uint64)
    return np.concatenate([bits.astype(np.uint32).view(np.float32), SPECIAL])


def _max_ulp_error(got: np.ndarray, exact: np.ndarray) -> float:
    """Error in units of the last place of the float32 result (denormals: of the smallest)."""
    with np.errstate(all="ignore"):
        want = exact.astype(np.float32)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    assert np.array_equal(np.isnan(got), np.isnan(want)), "NaN where NumPy has none, or back"
    finite = np.isfinite(want) & ~same
    assert not np.any(~same & ~finite & ~np.isnan(want) & (np.abs(exact) < 3.4e38)), "inf"
    unit = np.spacing(np.maximum(np.abs(want), np.float32(1.1754944e-38))).astype(np.float64)
    with np.errstate(all="ignore"):
        error = np.abs(got.astype(np.float64) - exact)
    return float(np.max(error[finite] / unit[finite], initial=0.0))


@pytest.mark.parametrize("name,fn,ref,ulps", [
    ("exp", sg.exp, np.exp, 2), ("log", sg.log, np.log, 2), ("tanh", sg.tanh, np.tanh, 2),
    ("sigmoid", sg.sigmoid, lambda v: 1 / (1 + np.exp(-v)), 3)])
def test_float32_function_is_accurate_everywhere(name, fn, ref, ulps):
    x = sg.placeholder(sg.float32, [None])
    y = fn(x)
    sess = sg.Session(device="cpu", flush_denormals=False)  # the functions on denormals too
    values = _inputs(len(name))
    kernels = sess.plan_for(y, {x: values[:1]}).kernels
    assert kernels and "_f32" in open(kernels[0].fn.py_func.__code__.co_filename).read()
    got = sess.run(y, {x: values})
    with np.errstate(all="ignore"):
        exact = ref(values.astype(np.float64))
    assert _max_ulp_error(got, exact) <= ulps
