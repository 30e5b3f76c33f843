"""compiler/codegen_cpu_startup.py: Numba loads with the collector paused, then frozen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent("""
    import gc, json, sys, weakref
    import numpy as np
    import symgraph as sg
    if sys.argv[1] == "user-disabled":
        gc.disable()
    x = sg.placeholder(sg.float32, [None, 3])
    y = sg.reduce_sum(sg.nn.relu(x) * 2.0)
    value = sg.Session().run(y, {x: np.ones((2, 3), np.float32)})

    class Cycle:
        pass

    a, b = Cycle(), Cycle()
    a.other, b.other = b, a  # garbage made after the freeze is still collected
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    print(json.dumps({"value": float(value), "frozen": gc.get_freeze_count(),
                      "enabled": gc.isenabled(), "cycle_collected": gone() is None}))
""")


@pytest.mark.parametrize("case", ["default", "opted-out", "user-disabled"])
def test_numba_objects_are_frozen_and_the_collector_left_as_it_was(case, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), SYMGRAPH_CACHE_DIR=str(tmp_path))
    env.pop("SYMGRAPH_GC_FREEZE", None)
    if case == "opted-out":
        env["SYMGRAPH_GC_FREEZE"] = "0"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, case], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["value"] == 12.0
    assert out["cycle_collected"]
    assert out["enabled"] is (case != "user-disabled")  # the user's choice stands
    if case == "opted-out":
        assert out["frozen"] == 0
    else:
        assert out["frozen"] > 50_000  # Numba's modules and registries, among the rest
