"""compiler/codegen_cpu_startup.py: Numba loads with the collector paused, then frozen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
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


WARM_SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import symgraph as sg
    from compiler import codegen_cpu_startup
    x = sg.placeholder(sg.float32, [None, 3])
    labels = sg.placeholder(sg.int64, [None])
    y = sg.reduce_sum(sg.nn.relu(x) * 2.0) + sg.reduce_sum(sg.matmul(x, sg.transpose(x))) \
        + sg.reduce_sum(sg.nn.sparse_softmax_cross_entropy_with_logits(  # an nn loop
            labels=labels, logits=x))
    w = sg.Variable(np.ones((1024, 2048), np.float32))
    halve = w.assign(w - w * 0.5)  # in place, from PARALLEL_MIN values: Numba's threads
    sess = sg.Session()
    sess.run(w.initializer)
    value = sess.run(y, {x: np.ones((200, 3), np.float32), labels: np.zeros(200, np.int64)})
    halved = sess.run(halve)
    import sys
    print(json.dumps({"value": float(value), "halved": float(halved.sum()),
                      "registries": codegen_cpu_startup._registries_loaded,
                      "numba_registries": "numba.np.arraymath" in sys.modules}))
""")


def test_a_process_whose_kernels_are_all_cached_never_loads_numbas_registries(tmp_path):
    """They load before the first compile (~0.13 s; ~0.35 s where SciPy is installed); cached
    machine code runs without them, on Numba's runtime alone (np.empty inside a kernel): fused
    loops, their parallel variants and the nn loops."""
    env = dict(os.environ, PYTHONPATH=str(REPO), SYMGRAPH_CACHE_DIR=str(tmp_path))
    runs = [json.loads(subprocess.run([sys.executable, "-c", WARM_SCRIPT], env=env,
                                      capture_output=True, text=True, timeout=300,
                                      check=True).stdout.splitlines()[-1]) for _ in range(2)]
    want = 1200.0 + 3 * 200 * 200 + 200 * np.log(3)  # relu, the product, the cross-entropy
    assert [r["value"] for r in runs] == pytest.approx([want] * 2)
    assert [r["halved"] for r in runs] == [1024 * 2048 * 0.5] * 2
    assert [r["registries"] for r in runs] == [True, False]
    assert [r["numba_registries"] for r in runs] == [True, False]  # loaded by no one else


BLAS_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import symgraph as sg
    x = sg.placeholder(sg.float32, [None, 3])
    value = sg.Session().run(sg.reduce_sum(x * 2.0), {x: np.ones((2, 3), np.float32)})
    at_start = "scipy.linalg.cython_blas" in sys.modules
    import numba.np.arraymath as arraymath
    found = bool(arraymath._HAVE_BLAS)  # Numba's own question, asked now
    print(json.dumps({"value": float(value), "at_start": at_start, "found": found,
                      "after": "scipy.linalg.cython_blas" in sys.modules}))
""")


@pytest.mark.parametrize("blas", [False, True])
def test_numbas_blas_check_waits_for_its_first_reader(blas, tmp_path):
    """Start-up does not import SciPy's BLAS (~0.2 s); Numba's flag still answers as Numba
    would have: True where SciPy has cython_blas, else False (a stand-in SciPy, with or
    without it, shadows whatever SciPy is installed)."""
    fake = tmp_path / "site"
    (fake / "scipy" / "linalg").mkdir(parents=True)
    (fake / "scipy" / "__init__.py").write_text('__version__ = "1.17.1"\n')
    if blas:
        (fake / "scipy" / "linalg" / "__init__.py").write_text("")
        (fake / "scipy" / "linalg" / "cython_blas.py").write_text("")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake), str(REPO)]),
               SYMGRAPH_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", BLAS_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["value"] == 12.0
    assert not out["at_start"]
    assert out["found"] is blas and out["after"] is blas


def test_numba_code_using_correlate_still_compiles():
    """np.correlate reads the flag when typed (SciPy's BLAS where found, else a loop)."""
    from numba import njit

    from compiler.codegen_cpu_startup import start_numba

    start_numba()

    @njit(cache=False)
    def correlate(a, b):
        return np.correlate(a, b)

    np.testing.assert_allclose(correlate(np.arange(4.0), np.ones(2)), [1.0, 3.0, 5.0])


FEATURES_SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import symgraph as sg
    from numba.core import config
    x = sg.placeholder(sg.float32, [None])
    sg.Session().run(sg.exp(x), {x: np.ones(3, np.float32)})
    print(json.dumps({"features": config.CPU_FEATURES}))
""")


@pytest.mark.parametrize("user", [None, "+sse2"])
def test_numba_targets_wide_vectors_on_avx512_unless_the_user_chose_features(user, tmp_path):
    """-prefer-256-bit joins the host's features on an AVX-512 processor (LLVM's Intel tuning
    left W2's loop scalar); NUMBA_CPU_FEATURES, when set, stands as it is."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    host = llvm.get_host_cpu_features().flatten()
    env = dict(os.environ, PYTHONPATH=str(REPO), SYMGRAPH_CACHE_DIR=str(tmp_path))
    env.pop("NUMBA_CPU_NAME", None)
    env.pop("NUMBA_CPU_FEATURES", None)
    if user is not None:
        env["NUMBA_CPU_FEATURES"] = user
    proc = subprocess.run([sys.executable, "-c", FEATURES_SCRIPT], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    features = json.loads(proc.stdout.splitlines()[-1])["features"]
    if user is not None:
        assert features == user
    elif "+avx512f" in host.split(","):
        assert features == host + ",-prefer-256-bit"
    else:
        assert features is None
