"""The random ops on the cuda device: their distributions, and seeds that replay.

Gated and set up by tests/cuda_common.py (imported below): run by tests/test_cuda.py
(simulator) and `make test-gpu` (GPU), never by a plain `pytest`.
"""

from __future__ import annotations

import cuda_common  # noqa: F401 - the gate and the simulator's set-up
import numpy as np

import symgraph as sg
from symgraph.ops import random as random_ops


def _random_ops(n: int) -> tuple[list[sg.Tensor], sg.Tensor]:
    """Every random op, and dropout, drawing about n values each (seeded graph)."""
    sg.set_random_seed(3)
    x = sg.placeholder(sg.float32, [None, 10])
    return [sg.random_uniform([n], -1.0, 3.0), sg.random_normal([n], 1.0, 2.0, dtype=sg.float64),
            sg.truncated_normal([n], 0.5, 1.0), sg.random_uniform([n], 0, 7, dtype=sg.int32),
            random_ops.random_uniform_like(x), sg.nn.dropout(x, 0.25)], x


def test_random_ops_draw_on_the_device_from_their_distributions() -> None:
    """~1000 draws of each random op on the device (its own numbers: TF1 too draws differently
    on a GPU): uniform in [min, max) with the uniform's mean and variance, normal's mean and
    variance, truncated normal within 2 stddev (variance 0.774 stddev^2), integers covering
    [min, max), dropout keeping about 1 - rate scaled by 1 / (1 - rate). Tolerances: ~5
    standard errors."""
    with sg.Graph().as_default():
        ops, x = _random_ops(1000)
        sess = sg.Session(device="cuda")
        uniform, normal, truncated, ints, like, dropped = sess.run(
            ops, {x: np.ones((100, 10), np.float32)})
    assert not sess._device.stats.host_ops, sess._device.stats.host_ops
    assert uniform.dtype == np.float32 and normal.dtype == np.float64
    assert -1 <= uniform.min() and uniform.max() < 3
    assert abs(uniform.mean() - 1) < 0.2 and abs(uniform.var() - 16 / 12) < 0.2
    assert abs(normal.mean() - 1) < 0.35 and abs(normal.var() - 4) < 0.9
    assert np.all(np.abs(truncated - 0.5) <= 2) and abs(truncated.mean() - 0.5) < 0.15
    assert abs(truncated.var() - 0.774) < 0.15
    assert ints.dtype == np.int32 and set(np.unique(ints)) == set(range(7))
    assert 0 <= like.min() and like.max() < 1 and abs(like.mean() - 0.5) < 0.1
    scale = np.float32(1) / np.float32(0.75)
    assert set(np.unique(dropped)) <= {0, scale} and abs((dropped > 0).mean() - 0.75) < 0.07


def test_seeded_random_ops_replay_in_a_new_session_and_change_every_run() -> None:
    """A seeded graph draws the same numbers in a new cuda session (its states start from the
    seed again); two runs of one session draw different numbers (the states advance)."""
    with sg.Graph().as_default():
        ops, x = _random_ops(8)
        feed = {x: np.ones((3, 10), np.float32)}
        sess = sg.Session(device="cuda")
        first, second = sess.run(ops, feed), sess.run(ops, feed)
        again = sg.Session(device="cuda").run(ops, feed)
    for a, b, c in zip(first, second, again):
        np.testing.assert_array_equal(a, c)
        assert not np.array_equal(a, b)
