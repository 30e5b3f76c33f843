"""Fusion and code generation: how many kernels a graph compiles to, what their source holds,
that float32 stays float32, and that the on-disk cache serves a second process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import symgraph as sg
from runtime import executor

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fresh_graph():
    sg.reset_default_graph()
    yield


def w2(dtype=sg.float32):
    """The issue's workload: sum(relu(x*a + b) * sigmoid(x) - 0.5*tanh(x)) and its gradient."""
    x = sg.placeholder(dtype, [None], name="x")
    a = sg.placeholder(dtype, [], name="a")
    b = sg.placeholder(dtype, [], name="b")
    f = sg.nn.relu(x * a + b) * sg.sigmoid(x) - 0.5 * sg.tanh(x)
    y = sg.reduce_sum(f)
    (g,) = sg.gradients(y, [x])
    return x, a, b, f, y, g


def test_w2_with_its_gradient_compiles_to_one_kernel():
    """The issue asks for one forward and one backward kernel; the gradient's loop reads only
    x, a and b, so the forward's sum and the gradient share one loop over x."""
    x, a, b, f, y, g = w2()
    feeds = {x: np.linspace(-3, 3, 50, dtype=np.float32), a: 1.5, b: 0.25}
    sess = sg.Session(device="cpu")
    for fetches in ([y], [g], [f, g]):
        assert len(sess.plan_for(fetches, feeds).kernels) == 1
    plan = sess.plan_for([y, g], feeds)
    assert len(plan.kernels) == 1, [k.name for k in plan.kernels]
    assert all(not isinstance(s, sg.Node) or s.opdef.kind.value != "elementwise"
               for s in plan.steps), "an elementwise op was left outside the kernels"
    got = sess.run([y, g], feeds)
    want = sg.Session(device="reference").run([y, g], feeds)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-6)


def test_a_chain_of_elementwise_ops_is_one_kernel():
    x = sg.placeholder(sg.float32, [None, 3])
    y = sg.exp(-(x * 2.0 + 1.0)) / (1.0 + sg.square(x))
    plan = sg.Session(device="cpu").plan_for(y, {x: np.ones((2, 3))})
    assert len(plan.kernels) == 1 and len(plan.kernels[0].members) == 7


def test_reduction_fuses_into_its_producer_loop():
    x = sg.placeholder(sg.float64, [None, 4])
    m = sg.reduce_mean(sg.square(x - 1.0), axis=1)
    mx = sg.reduce_max(sg.abs(x), axis=0, keepdims=True)
    sess = sg.Session(device="cpu")
    data = np.random.default_rng(0).normal(size=(5, 4))
    plan = sess.plan_for([m, mx], {x: data})
    kinds = [[n.opdef.name for n in k.members] for k in plan.kernels]
    assert any("reduce_mean" in k for k in kinds) and any("reduce_max" in k for k in kinds)
    got_m, got_mx = sess.run([m, mx], {x: data})
    np.testing.assert_allclose(got_m, np.mean((data - 1) ** 2, axis=1), rtol=1e-12)
    np.testing.assert_allclose(got_mx, np.max(np.abs(data), axis=0, keepdims=True))


def test_changing_the_batch_size_recompiles_nothing():
    x, a, b, _, y, g = w2()
    sess = sg.Session(device="cpu")
    first = sess.plan_for([y, g], {x: np.ones(4), a: 1.0, b: 0.0})
    sess.run([y, g], {x: np.ones(4, np.float32), a: 1.0, b: 0.0})
    signatures = [len(k.fn.signatures) for k in first.kernels]
    sess.run([y, g], {x: np.ones(9, np.float32), a: 1.0, b: 0.0})
    assert sess.plan_for([y, g], {x: np.ones(9), a: 1.0, b: 0.0}) is first
    assert [len(k.fn.signatures) for k in first.kernels] == signatures


def test_run_time_broadcasting_along_a_none_dim_falls_back_correctly():
    """Two (None,) operands fed (1,) and (3,): the kernel refuses, the nodes run one by one."""
    p = sg.placeholder(sg.float32, [None])
    q = sg.placeholder(sg.float32, [None])
    u = p * 2.0
    y = u + q
    before = executor.fallbacks
    got = sg.Session(device="cpu").run([u, y], {p: [1.0], q: [1.0, 2.0, 3.0]})
    assert executor.fallbacks == before + 1
    np.testing.assert_array_equal(got[0], [2.0])
    np.testing.assert_array_equal(got[1], [3.0, 4.0, 5.0])


def test_generated_source_holds_no_user_strings():
    hostile = "evil_name/os.system('rm')"
    x = sg.placeholder(sg.float32, [None], name="x_evil-name.injection")
    with sg.name_scope("scope_with_quotes"):
        y = sg.tanh(x * 3.0, name="tanh_DROP_TABLE")
    plan = sg.Session(device="cpu").plan_for(y, {x: [1.0]})
    (kernel,) = plan.kernels
    source = Path(kernel.fn.py_func.__code__.co_filename).read_text()
    for word in ("evil", "injection", "scope_with_quotes", "DROP_TABLE", hostile):
        assert word not in source
    assert kernel.name in source


def test_float32_kernels_compute_in_float32(tmp_path, monkeypatch):
    # compiled afresh: Numba cannot show the LLVM IR of code loaded from its cache
    from compiler import cache

    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cache, "_memo", {})
    x, a, b, f, _, _ = w2()
    sess = sg.Session(device="cpu")
    feeds = {x: np.ones(8, np.float32), a: 1.0, b: 0.0}
    sess.run(f, feeds)
    (kernel,) = sess.plan_for(f, feeds).kernels
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Inspection disabled for cached code" would be vacuous
        llvm = "\n".join(kernel.fn.inspect_llvm().values())
    assert "fmul" in llvm and " float " in llvm  # the real IR, with float32 arithmetic
    assert "fpext" not in llvm and " double " not in llvm


def test_the_parts_variant_loads_and_stores_contiguously(tmp_path, monkeypatch):
    """W2's loop in parts (codegen_cpu._render_parts) indexes every array from 0, through a
    view of its chunk: indexed from the argument `lo`, Numba's wraparound for negative indices
    stayed in the loop and LLVM vectorized its loads and stores as gathers and scatters (on an
    AMD Zen 4, 2.3x slower than the serial loop). Processors without gathers never show them."""
    from compiler import cache, codegen_cpu

    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))  # compiled afresh: IR can be shown
    monkeypatch.setattr(cache, "_memo", {})
    x, a, b, _, y, g = w2()
    sess = sg.Session(device="cpu")
    feeds = {x: np.linspace(-3, 3, 3000).astype(np.float32), a: 1.0, b: 0.0}
    monkeypatch.setattr(codegen_cpu, "PARALLEL_MIN", 0)
    got = sess.run([y, g], feeds)
    want = sg.Session(device="reference").run([y, g], feeds)
    for got_, want_ in zip(got, want):
        np.testing.assert_allclose(got_, want_, rtol=1e-5, atol=1e-6)
    (kernel,) = sess.plan_for([y, g], feeds).kernels
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        llvm = "\n".join(kernel.parts[0].inspect_llvm().values())
    assert re.search(r"load <\d+ x float>", llvm), "the loop is not vectorized"
    assert "masked.gather" not in llvm and "masked.scatter" not in llvm


VECTOR_SCRIPT = textwrap.dedent("""
    import re, sys, warnings
    import numpy as np
    import symgraph as sg
    sys.path.insert(0, sys.argv[1])
    from test_fusion import w2
    x, a, b, _, y, g = w2()
    sess = sg.Session(device="cpu")
    feeds = {x: np.ones(8, np.float32), a: 1.0, b: 0.0}
    sess.run([y, g], feeds)
    (kernel,) = sess.plan_for([y, g], feeds).kernels
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # compiled afresh: its IR can be shown
        llvm = "\\n".join(kernel.fn.inspect_llvm().values())
    print(max([int(n) for n in re.findall(r"<(\\d+) x float>", llvm)], default=1))
""")


def test_w2s_loop_vectorizes_on_avx512(tmp_path):
    """W2's loop, float64 sum included, runs on vectors of 8 float32 or more where the processor
    has AVX-512: with LLVM's Intel tuning it was left at 4 (codegen_cpu_startup). In a process
    of its own: the tuning is set before Numba's first compile in a process."""
    from compiler import codegen_cpu_tiles

    if codegen_cpu_tiles.LANES < 16:
        pytest.skip("not an AVX-512 target")
    env = dict(os.environ, PYTHONPATH=str(REPO), SYMGRAPH_CACHE_DIR=str(tmp_path))
    env.pop("NUMBA_CPU_NAME", None)
    env.pop("NUMBA_CPU_FEATURES", None)
    proc = subprocess.run([sys.executable, "-c", VECTOR_SCRIPT, str(REPO / "tests")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.splitlines()[-1]) >= 8


SECOND_PROCESS = textwrap.dedent("""
    import numpy as np, symgraph as sg
    x = sg.placeholder(sg.float32, [None], name="x")
    y = sg.reduce_sum(sg.nn.relu(x * 3.0 - 1.0) * sg.sigmoid(x))
    (g,) = sg.gradients(y, [x])
    sess = sg.Session(device="cpu")
    print(sess.run(y, {x: np.arange(5, dtype=np.float32)}))
    for k in sess.plan_for([y], {x: [1.0]}).kernels:
        print("hits", sum(k.fn.stats.cache_hits.values()),
              "misses", sum(k.fn.stats.cache_misses.values()))
""")


def test_a_second_process_compiles_nothing(tmp_path):
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(tmp_path), PYTHONPATH=str(REPO))
    runs = [subprocess.run([sys.executable, "-c", SECOND_PROCESS], env=env, cwd=REPO,
                           capture_output=True, text=True, check=True).stdout
            for _ in range(2)]
    assert runs[0].splitlines()[0] == runs[1].splitlines()[0]
    assert "misses 1" in runs[0] or "misses 0" in runs[0]
    assert all(line.endswith("misses 0") for line in runs[1].splitlines()[1:]), runs[1]
    assert "hits 1" in runs[1]
    assert list(tmp_path.glob("kernels-*/fused_*.py"))


@pytest.mark.parametrize("dtype", [sg.float32, sg.float64, sg.int32, sg.int64])
def test_extrema_over_no_elements_give_their_identity_on_every_device(dtype):
    # reduce_max over an empty axis: -inf (the lowest integer for ints), as TF gives the
    # reducer's identity; the reference once raised where the kernel gave -inf
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder(dtype, [None, 3])
        fetches = [sg.reduce_max(x, 0), sg.reduce_min(x, 0), sg.reduce_max(x),
                   sg.reduce_max(x * 2, 0)]
    empty = np.zeros((0, 3), dtype.np)
    ref = sg.Session(graph=g, device="reference").run(fetches, {x: empty})
    cpu = sg.Session(graph=g, device="cpu").run(fetches, {x: empty})
    low, high = ((-np.inf, np.inf) if dtype.is_floating
                 else (np.iinfo(dtype.np).min, np.iinfo(dtype.np).max))
    assert np.all(ref[0] == low) and np.all(ref[2] == low) and np.all(ref[1] == high)
    for r, c in zip(ref, cpu):
        np.testing.assert_array_equal(r, c)


def test_the_mean_of_no_elements_is_nan_without_a_warning():
    # TF gives 0 / 0 = NaN for the mean over an empty axis; NumPy's reference warned
    # "Mean of empty slice" (an error under -W error)
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder(sg.float32, [None, 3])
        fetches = [sg.reduce_mean(x, 0), sg.reduce_mean(x)]
    empty = np.zeros((0, 3), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for device in ("reference", "cpu"):
            by_axis, whole = sg.Session(graph=g, device=device).run(fetches, {x: empty})
            assert by_axis.shape == (3,) and np.isnan(by_axis).all() and np.isnan(whole)


def test_float32_reductions_accumulate_in_float64():
    """1e8 + 1.5 rounds to 1e8 + 2 in float32 (its spacing there is 8): a float32 accumulator
    (NumPy's pairwise sum, which the reference and a lone reduction use) loses some of the
    1.5s, a float64 one none. Fused loops' sums and means, whole and by axis."""
    values = np.array([1e8] + [1.0] * 40 + [-1e8], np.float32)
    assert np.sum(values * np.float32(1.5)) != 60  # float32 accumulation gets it wrong
    x = sg.placeholder(sg.float32, [None], name="x")
    rows = sg.placeholder(sg.float32, [None, 42], name="rows")
    fetches = [sg.reduce_sum(x * 1.5), sg.reduce_mean(x * 1.5),
               sg.reduce_sum(rows * 1.5, axis=1)]
    sess = sg.Session(device="cpu")
    feeds = {x: values, rows: np.stack([values, values[::-1]])}
    total, mean, by_row = sess.run(fetches, feeds)
    assert (total, by_row.tolist()) == (60.0, [60.0, 60.0])
    assert mean == np.float32(60 / 42)
    fused = [sorted(m.opdef.name for m in k.members)
             for k in sess.plan_for(fetches, feeds).kernels]
    assert sorted(fused) == [["multiply", "reduce_mean", "reduce_sum"],
                             ["multiply", "reduce_sum"]]


def test_parallel_variants_only_where_threads_cannot_collide(monkeypatch):
    from compiler import codegen_cpu, codegen_cpu_threads

    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder(sg.float32, [None, 5], name="x")
        b = sg.placeholder(sg.float32, [5], name="b")
        y = sg.tanh(x * 2.0 + b)
        fetches = {
            "full sum": sg.reduce_sum(y),  # one scalar accumulator: prange combines it
            "rows": sg.reduce_max(y, axis=1),  # each outer index owns its accumulator
            "columns": sg.reduce_sum(y, axis=0),  # outer indices would share one: serial only
            "full max": sg.reduce_max(y),  # a max into one scalar: serial only
        }
    feeds = {x: np.linspace(-1, 1, 35, dtype=np.float32).reshape(7, 5),
             b: np.arange(5, dtype=np.float32)}
    cpu = sg.Session(graph=g, device="cpu")
    expected = {"full sum": True, "rows": True, "columns": False, "full max": False}
    for key, fetch in fetches.items():
        (kernel,) = cpu.plan_for(fetch, feeds).kernels
        assert (kernel.parallel is not None) == expected[key], key
    if codegen_cpu_threads.thread_budget() < 2:
        pytest.skip("one core: the parallel variants never run here")
    monkeypatch.setattr(codegen_cpu, "PARALLEL_MIN", 0)
    reference = sg.Session(graph=g, device="reference")
    for key in ("full sum", "rows"):
        np.testing.assert_allclose(cpu.run(fetches[key], feeds),
                                   reference.run(fetches[key], feeds), rtol=1e-5, atol=1e-6)
        (kernel,) = cpu.plan_for(fetches[key], feeds).kernels
        assert kernel.parallel.signatures, "the parallel variant did not run"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_dimensional_loops_run_in_parts_on_threads(monkeypatch, dtype):
    """A one-dimensional loop (a flat one too) whose outputs are elementwise or sums of all of
    it gets a parts variant instead of a prange one (codegen_cpu.parts_of): each part computes
    a run of elements in chunks (CHUNK) and returns its sums so far; the sums and values are
    the reference's for sizes below, at and above a chunk, and for no elements."""
    from compiler import codegen_cpu, codegen_cpu_threads

    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder(dtype, [None], name="x")
        m = sg.placeholder(dtype, [4, 3], name="m")  # a static shape: the flat loop
        y = sg.tanh(x * 2.0) + sg.constant(np.array([1.0], dtype))  # a size-1 input too
        fetches = [y, sg.reduce_sum(y), sg.reduce_sum(y * y, keepdims=True),
                   sg.sigmoid(m) * 3.0]
    cpu = sg.Session(graph=g, device="cpu")
    reference = sg.Session(graph=g, device="reference")
    steps = {0: 0}
    kernels = cpu.plan_for(fetches, {x: np.ones(3, dtype), m: np.ones((4, 3), dtype)}).kernels
    assert len(kernels) == 2 and all(k.parts is not None and k.parallel is None
                                     for k in kernels)
    if codegen_cpu_threads.thread_budget() < 2:
        pytest.skip("one core: the parts never run on threads here")
    monkeypatch.setattr(codegen_cpu, "PARALLEL_MIN", 0)
    split = codegen_cpu.run_in_parts
    monkeypatch.setattr(codegen_cpu, "run_in_parts",
                        lambda fn, total: (steps.update({0: steps[0] + 1}), split(fn, total)))
    rng = np.random.default_rng(0)
    for size in (0, 5, codegen_cpu.CHUNK, 2 * codegen_cpu.CHUNK + 7):
        feed = {x: rng.standard_normal(size).astype(dtype),
                m: rng.standard_normal((4, 3)).astype(dtype)}
        got, want = cpu.run(fetches, feed), reference.run(fetches, feed)
        for g_, w_ in zip(got, want):
            assert g_.shape == w_.shape and g_.dtype == w_.dtype
            np.testing.assert_allclose(g_, w_, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                       atol=1e-5 if dtype == np.float32 else 1e-12)
    assert steps[0] == 8  # two kernels, four sizes: every run split
    assert all(k.parts[0].signatures for k in kernels)


def test_bias_add_and_activation_fuse_into_the_epilogue_of_matmul_and_conv():
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder(sg.float32, [None, 3], name="x")
        images = sg.placeholder(sg.float32, [None, 5, 5, 2], name="images")
        dense = sg.nn.relu(sg.nn.bias_add(sg.matmul(x, np.ones((3, 4), np.float32)),
                                          np.linspace(-1, 1, 4, dtype=np.float32)))
        conv = sg.nn.relu(sg.nn.bias_add(
            sg.nn.conv2d(images, np.ones((3, 3, 2, 3), np.float32), 1, "SAME"),
            np.float32([-1.0, 0.5, 2.0])))
        loss = sg.reduce_sum(dense) + sg.reduce_sum(conv)
        product = sg.matmul(x, np.ones((3, 4), np.float32) * 2.0)
        shared = sg.tanh(product) + sg.reduce_sum(product)  # the product read twice: no epilogue
    rng = np.random.default_rng(0)
    feeds = {x: rng.standard_normal((2, 3)).astype(np.float32),
             images: rng.standard_normal((2, 5, 5, 2)).astype(np.float32)}
    fetches = [loss, dense, conv, product, shared]
    cpu = sg.Session(graph=g, device="cpu")
    plan = cpu.plan_for([loss], feeds)
    opened = [[m.opdef.name for m in k.members][0] for k in plan.kernels
              if len(k.members) > 1 and k.members[0].opdef.name in ("matmul", "conv2d")]
    assert sorted(opened) == ["conv2d", "matmul"]
    assert not any(isinstance(s, sg.Operation) and s.opdef.name in ("matmul", "conv2d")
                   for s in plan.steps)
    plan = cpu.plan_for([product, shared], feeds)  # fetched, and read by two loops: kept apart
    assert any(isinstance(s, sg.Operation) and s.opdef.name == "matmul" for s in plan.steps)
    want = sg.Session(graph=g, device="reference").run(fetches, feeds)
    for got, ref in zip(cpu.run(fetches, feeds), want):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("on_threads", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_matrix_products_epilogue_runs_in_place_in_blocks_of_rows(monkeypatch, dtype,
                                                                     on_threads,
                                                                     epilogue_blocks):
    """relu(x @ w + b) alone: the loop stores into the product, on blocks of rows split over
    the thread budget from SPLIT_MIN values (compiler.epilogue.in_place_products). With a
    second output (the mask a training step keeps) it runs after, over the whole product."""
    from compiler import codegen_cpu_nn, codegen_cpu_threads

    if on_threads:
        if codegen_cpu_threads.thread_budget() < 2:
            pytest.skip("one core: nothing runs in parts here")
        monkeypatch.setattr(codegen_cpu_nn, "SPLIT_MIN", 0)
    blocks = epilogue_blocks
    rng = np.random.default_rng(2)
    with sg.Graph().as_default() as graph:
        x = sg.placeholder(dtype, [None, 6])
        h = sg.matmul(x, rng.standard_normal((6, 5)).astype(dtype)) \
            + rng.standard_normal(5).astype(dtype)
        alone = sg.nn.relu(h)
        h2 = sg.matmul(x, rng.standard_normal((6, 5)).astype(dtype)) + 1.0
        pair = [sg.nn.relu(h2), h2 > 0]
    feed = {x: rng.standard_normal((7, 6)).astype(dtype)}
    cpu, reference = sg.Session(graph=graph, device="cpu"), sg.Session(graph=graph,
                                                                     device="reference")
    for fetches, in_place in ((alone, True), (pair, False)):
        (step,) = [s for s in cpu.plan_for(fetches, feed).steps if hasattr(s, "producer")]
        assert step.in_place == in_place
        blocks.clear()
        got, want = cpu.run([fetches], feed)[0], reference.run([fetches], feed)[0]
        for g_, w_ in zip(got if isinstance(got, list) else [got],
                          want if isinstance(want, list) else [want]):
            np.testing.assert_allclose(g_, w_, rtol=1e-5, atol=1e-5)
        rows = sorted(b[0] for b in blocks)  # 7 rows: two threads take 3 and 4
        assert rows == (([3, 4] if on_threads else [7]) if in_place else [])


def test_updates_of_one_static_shape_share_one_kernel_whatever_the_rank():
    """A loop over values of one static shape (and scalars) runs over the raveled values, so
    the same update of a matrix, a 4-d filter and a bias compiles once; strided values, BLAS
    products (writable) and kernel outputs (read-only) give the right answers and one version."""
    g = sg.Graph()
    with g.as_default():
        lr = sg.placeholder(sg.float32, [], name="lr")
        p = sg.placeholder(sg.float32, [3, 5], name="p")
        q = sg.placeholder(sg.float32, [5, 4], name="q")
        h = sg.placeholder(sg.float32, [6, 4], name="h")
        grads = [sg.matmul(p, q),  # a BLAS product: the update is its epilogue
                 sg.placeholder(sg.float32, [2, 3, 1, 2], name="g4"),
                 sg.reduce_sum(sg.exp(h), axis=0)]  # a reduction kernel's read-only output
        weights = [sg.placeholder(sg.float32, t.shape.dims) for t in grads]
        updates = [w - lr * d / (sg.sqrt(d * d) + 1.0) for w, d in zip(weights, grads)]
    rng = np.random.default_rng(0)
    feeds = {lr: np.float32(0.5)}
    for t in [p, q, h, grads[1], *weights]:
        shape = tuple(t.shape.dims)
        feeds[t] = rng.normal(size=shape[::-1]).astype(np.float32).T  # strided
    cpu = sg.Session(graph=g, device="cpu")
    got = cpu.run(updates, feeds)
    want = sg.Session(graph=g, device="reference").run(updates, feeds)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5)
    plan = cpu.plan_for(updates, feeds)
    names = [k.name.split("+")[-1] for k in plan.kernels if "fused_6" in k.name]
    assert len(names) == 3 and len(set(names)) == 1, [k.name for k in plan.kernels]
    (shared,) = {k.fn for k in plan.kernels if k.name == names[0]}  # one function, one version
    assert len(shared.signatures) == 1, shared.signatures
    # outputs are read-only down to their memory: a variable keeps one without a copy
    from compiler.codegen_cpu import _call_flat

    (out,) = _call_flat(lambda a: (a + 1,), (2, 3), np.ones((2, 3), np.float32))
    assert out.shape == (2, 3) and not out.base.flags.writeable


def test_nhwc_loops_merge_their_leading_dimensions_and_match_the_dense_kernels():
    """A bias-add + ReLU over (N, H, W, C) and the bias gradient (a sum over N, H, W) run as
    loops over (N H W, C): the same kernels as a dense layer's over (N, C). Two inputs whose
    leading dimensions differ at run time (one broadcasts) make the kernel refuse them."""
    g = sg.Graph()
    with g.as_default():
        x4 = sg.placeholder(sg.float32, [None, 3, 2, 5], name="x4")
        x2 = sg.placeholder(sg.float32, [None, 5], name="x2")
        u4 = sg.placeholder(sg.float32, [None, 3, 2, 5], name="u4")
        b = sg.placeholder(sg.float32, [5], name="b")
        fetches = []
        for x in (x4, x2):
            y = sg.nn.relu(x + b)
            fetches += [y, sg.reduce_sum(y * 3.0, axis=list(range(x.shape.rank - 1)))]
        fetches.append(x4 * u4 + 1.0)
    rng = np.random.default_rng(1)
    feeds = {x4: rng.normal(size=(4, 3, 2, 5)).astype(np.float32),
             x2: rng.normal(size=(7, 5)).astype(np.float32),
             u4: rng.normal(size=(4, 3, 2, 5)).astype(np.float32),
             b: rng.normal(size=5).astype(np.float32)}
    cpu = sg.Session(graph=g, device="cpu")
    reference = sg.Session(graph=g, device="reference")
    for got, want in zip(cpu.run(fetches, feeds), reference.run(fetches, feeds)):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    kernels = {tuple(fetches[i:i + 2]): cpu.plan_for(fetches[i:i + 2], feeds).kernels
               for i in (0, 2)}
    names = [sorted(k.name for k in ks) for ks in kernels.values()]
    assert names[0] == names[1], names
    before = executor.fallbacks
    feeds[u4] = feeds[u4][:1]  # broadcasts along N at run time
    got = cpu.run(fetches[-1], feeds)
    assert executor.fallbacks == before + 1
    np.testing.assert_allclose(got, reference.run(fetches[-1], feeds), rtol=1e-6)


def test_siblings_fuse_where_their_values_meet_and_unrelated_loops_stay_apart():
    """a*s and sqrt(b) share no input but meet at the divide: one loop. c*2 - d, of the same
    shape, reads nothing of it: a loop of its own (it then matches kernels elsewhere)."""
    a, b, c, d = (sg.placeholder(sg.float32, [4], name=n) for n in "abcd")
    s = sg.placeholder(sg.float32, [], name="s")
    meet = (a * s) / (sg.sqrt(b) + 1.0)
    other = c * 2.0 - d
    feeds = {t: np.arange(4, dtype=np.float32) + i for i, t in enumerate((a, b, c, d))}
    feeds[s] = np.float32(3)
    cpu = sg.Session(device="cpu")
    plan = cpu.plan_for([meet, other], feeds)
    assert sorted(len(k.members) for k in plan.kernels) == [2, 4], \
        [[m.opdef.name for m in k.members] for k in plan.kernels]
    want = sg.Session(device="reference").run([meet, other], feeds)
    for got, ref in zip(cpu.run([meet, other], feeds), want):
        np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_a_loop_waits_for_a_later_input_unless_its_value_is_read_before():
    """In tanh(x*2 + exp(v)), exp(v) has another shape (its own loop) and comes after x*2:
    the loop of x*2 waits for it, and computes the sum and the tanh too, in whichever order
    the sum was written. Where a matmul reads x*2 in between, the loop runs where it was."""
    x = sg.placeholder(sg.float32, [None, 4], name="x")
    v = sg.placeholder(sg.float32, [4], name="v")
    w = sg.placeholder(sg.float32, [4, 4], name="w")
    left, right = sg.tanh(x * 2.0 + sg.exp(v)), sg.tanh(sg.exp(v) + x * 2.0)
    twice = x * 3.0
    product = sg.matmul(twice, w)
    read = twice + sg.sin(v)
    rng = np.random.default_rng(0)
    feeds = {x: rng.standard_normal((3, 4)).astype(np.float32),
             v: rng.standard_normal(4).astype(np.float32),
             w: rng.standard_normal((4, 4)).astype(np.float32)}
    cpu = sg.Session(device="cpu")

    def loops(fetches):
        return sorted([m.opdef.name for m in k.members]
                      for k in cpu.plan_for(fetches, feeds).kernels)

    assert loops(left) == loops(right) == [["exp"], ["multiply", "add", "tanh"]]
    assert loops([product, read]) == [["add"], ["multiply"], ["sin"]]
    fetches = [left, right, product, read]
    want = sg.Session(device="reference").run(fetches, feeds)
    for got, ref in zip(cpu.run(fetches, feeds), want):
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)


def test_an_update_is_rendered_in_place_and_only_that_way():
    """Adam's slot and weight updates store into the arrays they read (one argument for the
    old and the new value: an output aliasing another argument fails LLVM's alias check and
    runs scalar), allocate no output, and are the only form compiled for those groups."""
    w = sg.Variable(np.ones((8, 4), np.float32), name="w")
    loss = sg.reduce_sum(sg.square(w))
    train = sg.train.AdamOptimizer(0.1).minimize(loss)
    sess = sg.Session(device="cpu")
    sess.run(sg.global_variables_initializer())
    plan = sess.plan_for(train)
    updated = {}
    for kernel, updates in zip(plan.steps, plan.updates):
        for u in updates:
            updated[u.var.name] = kernel
    assert sorted(updated) == ["w", "w/Adam", "w/Adam_1"]
    for kernel in set(updated.values()):
        source = Path(kernel.fn.py_func.__code__.co_filename).read_text()
        for slot in kernel.writes:
            assert f"a{slot}[i0] = " in source and f"x{slot} = a{slot}[i0]" in source
        assert "np.empty" not in source  # every output of these loops is in place
    assert len(set(updated.values())) == 1  # m, v and w in one loop (forward_assigned_values)
    for _ in range(2):
        sess.run(train)


def test_a_weight_that_other_steps_read_is_stored_a_chunk_at_a_time():
    """An in-place update of an array that another step reads too (a weight, which a matrix
    product reads, on both cores) computes a chunk (CHUNK values) of it into an array of the
    loop's own, then stores it by a loop of its own (codegen_cpu._render_chunked_stores); the
    slots, which only the update reads, are stored as they are computed, through views of the
    chunk. Over sizes off the chunk, the values are the reference's."""
    from compiler import cache, codegen_cpu

    columns = (2 * codegen_cpu.CHUNK + 7) // 3 + 1  # 3 x columns: two chunks and some
    rng = np.random.default_rng(4)
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder(sg.float32, [None, 3], name="x")
        w = sg.Variable(rng.standard_normal((3, columns)).astype(np.float32), name="w")
        loss = sg.reduce_sum(sg.square(sg.matmul(x, w) - 1.0))
        train = sg.train.AdamOptimizer(0.01).minimize(loss)
        slots = [w] + [v for v in sg.global_variables() if v.name.startswith("w/")]
        init = sg.global_variables_initializer()
    feed = {x: rng.standard_normal((5, 3)).astype(np.float32)}
    sessions = [sg.Session(graph=g, device=d) for d in ("cpu", "reference")]
    for sess in sessions:
        sess.run(init)
        for _ in range(3):
            sess.run(train, feed)
    for got, want in zip(*(sess.run(slots) for sess in sessions)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    plan = sessions[0].plan_for(train, feed)
    (kernel,) = {k for k, updates in zip(plan.steps, plan.updates) if updates}
    loop = kernel.name.split("+")[-1]  # the dW product's epilogue: the update is its loop
    source = (cache.cache_dir() / f"{loop}.py").read_text().split("\n\n\n@")[1]
    as_computed = set(re.findall(r"w(\d+)\[j0\] = ", source))  # m and v
    copied = re.findall(r"u\d+ = a(\d+)\[c0:c1\]", source)  # w
    assert len(as_computed) == 2 and len(copied) == 1 and copied[0] not in as_computed
    assert source.count(f"np.empty({codegen_cpu.CHUNK}") == 1


def test_a_variable_with_two_writers_is_not_updated_in_place():
    """Each write of a variable with two writers in one run must see the value from before
    the run: neither may overwrite it."""
    v = sg.Variable(np.arange(4, dtype=np.float32), name="v")
    both = [v.assign(v * 2.0 + 1.0), v.assign(v * 3.0)]
    cpu, ref = sg.Session(device="cpu"), sg.Session(device="reference")
    for sess in (cpu, ref):
        sess.run(v.initializer)
    assert not any(cpu.plan_for(both).updates)
    for a, b in zip(cpu.run(both), ref.run(both)):
        np.testing.assert_array_equal(a, b)
