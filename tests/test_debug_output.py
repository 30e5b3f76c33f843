"""SYMGRAPH_DEBUG=1..4: each level adds what the README says it does, on stderr."""

import numpy as np
import pytest

import symgraph as sg


def _run_small_graph() -> None:
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder(sg.float32, [None, 3], name="x")
        y = sg.reduce_sum(sg.nn.relu(x * 2.0 + 1.0) * sg.sigmoid(x), name="total")
        dx, = sg.gradients(y, [x])
    sg.Session(graph=g, device="cpu").run([y, dx], {x: np.ones((2, 3), np.float32)})


@pytest.mark.parametrize("level", [0, 1, 2, 3, 4])
def test_each_level_adds_its_part(level, monkeypatch, capsys):
    monkeypatch.setenv("SYMGRAPH_DEBUG", str(level))
    _run_small_graph()
    err = capsys.readouterr().err
    shown = {
        1: "pass simplify:" in err and "kernel fused_" in err,
        2: "cache hit: fused_" in err or "cache miss: fused_" in err,
        3: "source of fused_" in err and "@njit(" in err,
        4: "plan: " in err and "kernel fused_" in err and "'total'" in err
           and "test_debug_output.py" in err,
    }
    assert {k: v for k, v in shown.items()} == {k: k <= level for k in shown}
