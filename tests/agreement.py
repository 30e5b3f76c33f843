"""How close device "cpu" must come to device "reference": the issue's tolerances (float32 rtol
1e-5, float64 1e-10), widened where the reference itself is far from the exact value.

In float32 a computation may be ill-conditioned (1 - tanh(x)^2 where tanh(x) is near 1, or a - b
where a ~ b): there an ulp of difference in an operand, between two correct implementations, is
more than the tolerance in the result. So a float32 element may also differ from the reference by
4x as much as the reference differs from the exact (float64) value: a wrong result is far from
both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TOLERANCE = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-10, atol=1e-12)}


def assert_agrees(got: Sequence[np.ndarray], want: Sequence[np.ndarray],
                  exact: Sequence[np.ndarray], dtype: str, what: str = "value") -> None:
    """Each of `got` (cpu) equals the same of `want` (reference) within TOLERANCE[dtype], or
    within 4x the reference's distance from `exact`; NaN where the reference has NaN."""
    tol = TOLERANCE[dtype]
    for k, (g, w, e) in enumerate(zip(got, want, exact)):
        assert g.dtype == w.dtype and g.shape == w.shape, (k, g.dtype, w.dtype, g.shape, w.shape)
        with np.errstate(invalid="ignore"):
            allowed = tol["atol"] + tol["rtol"] * np.abs(w) + 4 * np.abs(w - e)
            bad = ~((np.abs(g - w) <= allowed) | (np.isnan(g) & np.isnan(w)) | (g == w))
        assert not bad.any(), (
            f"{what} {k}: cpu differs from reference at {np.argwhere(bad)[:5].tolist()}: "
            f"cpu {g[bad][:5]}, reference {w[bad][:5]}, exact {e[bad][:5]}")
