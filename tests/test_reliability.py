"""Reliability promises: a killed save leaves a whole checkpoint, runs from several threads
are atomic, caches survive concurrent first use in threads and processes, and generated
kernel source never holds the user's names."""

import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import symgraph as sg
from compiler import cache

REPO = Path(__file__).resolve().parent.parent

SAVER_LOOP = textwrap.dedent("""
    import sys, numpy as np, symgraph as sg
    prefix = sys.argv[1]
    v = sg.Variable(np.zeros(1 << 20, np.float32), name="v")  # 4 MB: saves take a while
    bump = v.assign_add(np.ones(1 << 20, np.float32))
    saver = sg.train.Saver(max_to_keep=None)
    with sg.Session(device="reference") as sess:
        sess.run(sg.global_variables_initializer())
        saver.save(sess, prefix)
        print("saved", flush=True)
        while True:
            sess.run(bump)
            saver.save(sess, prefix)
""")


@pytest.mark.parametrize("kills", [pytest.param(4, id="4 kills"),
                                   pytest.param(40, id="40 kills", marks=pytest.mark.slow)])
def test_a_save_killed_at_any_moment_leaves_a_whole_checkpoint(tmp_path, kills):
    prefix = str(tmp_path / "model")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    rng = random.Random(0)
    for _ in range(kills):
        child = subprocess.Popen([sys.executable, "-c", SAVER_LOOP, prefix], env=env,
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "saved"
        time.sleep(rng.uniform(0.0, 0.3))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        with sg.Graph().as_default():
            v = sg.Variable(np.zeros(1 << 20, np.float32), name="v")
            with sg.Session(device="reference") as sess:
                sg.train.Saver().restore(sess, prefix)
                value = sess.run(v)
        assert np.all(value == value[0])  # one save's values, not a mix of two


def test_runs_from_several_threads_are_atomic_and_compile_once():
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder(sg.float32, [None], name="x")
        count = sg.Variable(np.float32(0), name="count")
        total = sg.Variable(np.float32(0), name="total")
        step = sg.group(count.assign_add(1.0), total.assign_add(sg.reduce_sum(x)))
        init = sg.global_variables_initializer()
    sess = sg.Session(graph=g)
    sess.run(init)
    threads, runs = 4, 50
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            barrier.wait()  # every thread asks for the same, not yet compiled plan at once
            for _ in range(runs):
                sess.run(step, {x: np.full(3, k, np.float32)})
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors
    assert sess.run(count) == threads * runs
    assert sess.run(total) == 3 * runs * sum(range(threads))
    assert len([k for k in sess._plans if k[0] == (step.id,)]) == 1


TWIN = textwrap.dedent("""
    import numpy as np, symgraph as sg
    x = sg.placeholder(sg.float32, [None], name="x")
    y = sg.reduce_sum(sg.tanh(x * 1.5 + 0.25) * sg.exp(-x))
    (g,) = sg.gradients(y, [x])
    print(sg.Session(device="cpu").run([y, g], {x: np.linspace(-1, 1, 7, dtype=np.float32)}))
""")


def test_two_processes_compiling_the_same_graph_at_once_both_succeed(tmp_path):
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(tmp_path), PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", TWIN], env=env, cwd=REPO, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0][0] == outs[1][0] and outs[0][0]


def test_kernel_source_holds_no_user_names():
    g = sg.Graph()
    names = ["import_os_system", "evil.name-1", "builtins__import", "exec_me"]
    with g.as_default():
        with sg.name_scope("scope_os_popen"):
            x = sg.placeholder(sg.float32, [None, 4], name=names[0])
            w = sg.Variable(np.ones(4, np.float32), name=names[1])
            y = sg.reduce_sum(sg.sigmoid(x * w + 1.0, name=names[2]), name=names[3])
            dx, dw = sg.gradients(y, [x, w])
        init = sg.global_variables_initializer()
    sess = sg.Session(graph=g, device="cpu")
    sess.run(init)
    feed = {x: np.ones((2, 4), np.float32)}
    sess.run([y, dx, dw], feed)
    kernels = sess.plan_for([y, dx, dw], feed).kernels
    assert kernels
    for kernel in kernels:
        source = Path(sys.modules[kernel.fn.py_func.__module__].__file__).read_text()
        for text in names + ["scope_os_popen", "evil", "os_system", "exec_me"]:
            assert text not in source, (kernel.name, text)


def test_generated_kernels_import_only_modules_in_the_cache_tag():
    """The cache tag hashes the modules kernels import (cache.KERNEL_IMPORTS), as a kernel's
    name hashes only its own text: an import missing from the tag would let an edited helper
    function run stale from the cache."""
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder(sg.float32, [None, 6, 6, 2], name="x")
        k = sg.Variable(np.ones((3, 3, 2, 3), np.float32), name="k")
        y = sg.reduce_sum(sg.tanh(sg.nn.max_pool2d(sg.nn.conv2d(x, k, 1, "SAME"), 2, 2,
                                                   "VALID")))
        init = sg.global_variables_initializer()
    sess = sg.Session(graph=g, device="cpu")
    sess.run(init)
    sess.run(y, {x: np.ones((1, 6, 6, 2), np.float32)})
    sources = list(cache.cache_dir().glob("*.py"))
    assert any(p.name.startswith("nn_") for p in sources)
    assert any(p.name.startswith("fused_") for p in sources)
    imported = {m for p in sources
                for m in re.findall(r"^from compiler\.(\w+) import", p.read_text(), re.M)}
    assert imported and imported <= set(cache.KERNEL_IMPORTS), imported


def test_ops_created_inside_the_training_loop_are_warned_about_once():
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder(sg.float32, [], name="x")
        sess = sg.Session(graph=g, device="reference")
        with pytest.warns(RuntimeWarning, match="inside the training loop") as caught:
            for i in range(30):
                sess.run(x * float(i), {x: 1.0})  # the leak: a new op every iteration
        assert len(caught) == 1 and "test_reliability.py" in str(caught[0].message)
        y = x * 2.0
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for _ in range(30):
                sess.run(y, {x: 1.0})  # a fixed graph: silent
            for _ in range(5):  # building and running in turns, a few times: silent
                sess.run(y + 1.0, {x: 1.0})


def test_files_for_users_get_the_usual_permissions(tmp_path):
    from symgraph.files import write_atomically

    umask = os.umask(0o022)
    os.umask(umask)
    write_atomically(tmp_path / "f.txt", "x")
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_soak_20k_training_steps_hold_memory_plans_and_graph_steady():
    from compiler import cache

    g = sg.Graph()
    rng = np.random.default_rng(0)
    with g.as_default():
        x = sg.placeholder(sg.float32, [None, 32], name="x")
        y = sg.placeholder(sg.int64, [None], name="y")
        h = sg.layers.dense(x, 64, activation=sg.nn.relu)
        h = sg.layers.dense(h, 64, activation=sg.nn.relu)
        logits = sg.layers.dense(h, 10)
        loss = sg.reduce_mean(
            sg.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        train = sg.train.AdamOptimizer(1e-3).minimize(loss)
        init = sg.global_variables_initializer()
    sess = sg.Session(graph=g)
    sess.run(init)
    batches = [{x: rng.random((16, 32), dtype=np.float32), y: rng.integers(0, 10, 16)}
               for _ in range(8)]
    samples = {}
    for step in range(20_000):
        sess.run([train, loss], batches[step % len(batches)])
        if step == 2_000:
            plans, kernels, nodes = len(sess._plans), len(cache._memo), len(g.nodes)
        if step % 2_000 == 0:
            samples[step] = _rss_bytes()
    assert (len(sess._plans), len(cache._memo), len(g.nodes)) == (plans, kernels, nodes)
    growth = max(samples.values()) - samples[2_000]
    assert growth < 8 << 20, {k: v >> 20 for k, v in samples.items()}  # MiB per sample


def _truncate(paths: list[Path], keep: int) -> None:
    assert paths
    for path in paths:
        path.write_bytes(path.read_bytes()[:keep])


def test_damaged_kernel_cache_entries_are_recompiled_not_trusted(tmp_path):
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(tmp_path), PYTHONPATH=str(REPO),
               SYMGRAPH_DEBUG="2")

    def run() -> tuple[str, str]:
        done = subprocess.run([sys.executable, "-c", TWIN], env=env, cwd=REPO, text=True,
                              capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout, done.stderr

    expected, _ = run()
    pycache = list(tmp_path.glob("kernels-*/__pycache__"))
    for damaged, keep in (("*.nbc", 100), ("*.nbi", 10)):
        _truncate(list(pycache[0].glob(damaged)), keep)
        out, err = run()
        assert out == expected and "unreadable" in err, err
        out, err = run()  # the entry was rewritten: a plain hit again
        assert out == expected and "unreadable" not in err
    _truncate(list(tmp_path.glob("kernels-*/fused_*.py")), 100)
    out, err = run()
    assert out == expected and "differs on disk" in err


def test_nothing_but_the_restricted_mnist_reader_unpickles():
    allowed = {Path("symgraph/datasets/mnist.py")}
    users = set()
    for package in ("symgraph", "compiler", "runtime"):
        for path in (REPO / package).rglob("*.py"):
            text = path.read_text()
            if "import pickle" in text or "pickle.load" in text or "allow_pickle=True" in text:
                users.add(path.relative_to(REPO))
    assert users == allowed


def test_the_graph_can_grow_while_runs_are_in_flight():
    g = sg.Graph()
    with g.as_default():
        x = sg.placeholder(sg.float64, [None], name="x")
        y = sg.reduce_sum(sg.square(x) + 1.0)
    sess = sg.Session(graph=g)
    errors: list[BaseException] = []
    results: list[float] = []

    def run() -> None:
        try:
            for _ in range(100):
                results.append(float(sess.run(y, {x: [1.0, 2.0]})))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def grow() -> None:
        try:
            with g.as_default():
                z = x
                for _ in range(300):
                    z = sg.sin(z) * 0.5
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the growth warning is expected here
        pool = [threading.Thread(target=run), threading.Thread(target=grow)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    assert not errors and results == [7.0] * 100
    assert len(g.nodes) > 600


def test_kernel_directories_of_other_versions_are_deleted_once_stale(tmp_path, monkeypatch):
    """compiler/cache.py: a tag directory nothing has written to for STALE_DAYS (an older
    symgraph or Numba) is deleted; the current one and recently used ones are kept."""
    from compiler import cache

    old, recent, other = (tmp_path / "kernels-old", tmp_path / "kernels-recent",
                          tmp_path / "notes")
    for d in (old / "__pycache__", recent / "__pycache__", other):
        d.mkdir(parents=True)
    long_ago = time.time() - (cache.STALE_DAYS + 1) * 86400
    for p in (old, old / "__pycache__", other):
        os.utime(p, (long_ago, long_ago))
    os.utime(recent, (long_ago, long_ago))  # its __pycache__ was written just now
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    current = cache.cache_dir()
    assert not old.exists()
    assert recent.exists() and other.exists()
    current.mkdir()
    os.utime(current, (long_ago, long_ago))
    assert cache.prune_stale(tmp_path, current) == []  # never the directory in use


def test_kernel_texts_whose_short_digests_collide_get_names_of_their_own(tmp_path,
                                                                        monkeypatch):
    """compiler/cache.py: a kernel is named by 8 hex digits of its text's digest; a second
    text with the same 8 digits is named by 16, and a name never brings back the module of
    another text."""
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cache, "_named", {})
    real = cache._digest
    monkeypatch.setattr(cache, "_digest", lambda text: "0" * 8 + real(text)[8:])
    with sg.Graph().as_default():
        x = sg.placeholder(sg.float64, [3], name="x")
        fetches = [sg.exp(x) + 1.0, sg.tanh(x) * 2.0]
        with sg.Session(device="cpu") as sess:
            names = [sess.plan_for(y, {x: np.zeros(3)}).kernels[0].name for y in fetches]
            data = np.array([-1.0, 0.5, 2.0])
            got = [sess.run(y, {x: data}) for y in fetches]
    assert names[0] == "fused_2_00000000"
    assert names[1].startswith("fused_2_00000000") and len(names[1]) == len(names[0]) + 8
    np.testing.assert_allclose(got[0], np.exp(data) + 1.0, rtol=1e-12)
    np.testing.assert_allclose(got[1], np.tanh(data) * 2.0, rtol=1e-12)
    with pytest.raises(RuntimeError, match="two kernel texts named fused_2_00000000"):
        cache.load_module(names[0], "def fused_2_00000000():\n    return 1\n")


def test_the_user_cache_directory_follows_xdg_cache_home(tmp_path, monkeypatch):
    """Kernels and datasets go under $XDG_CACHE_HOME/symgraph where that is an absolute path
    (a relative one is ignored, as the XDG rules say), else under ~/.cache/symgraph."""
    from symgraph.datasets import mnist
    from symgraph.files import user_cache_dir

    monkeypatch.delenv("SYMGRAPH_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache_dir() == tmp_path / "xdg" / "symgraph"
    assert cache.cache_dir().parent == tmp_path / "xdg" / "symgraph"
    assert mnist.default_dirs()[-1] == tmp_path / "xdg" / "symgraph" / "datasets" / "mnist"
    for unset in ("relative/cache", ""):
        monkeypatch.setenv("XDG_CACHE_HOME", unset)
        assert user_cache_dir() == tmp_path / "home" / ".cache" / "symgraph"


@pytest.mark.parametrize("dont_write", [True, False])
def test_kernel_modules_keep_their_bytecode_in_the_cache(tmp_path, monkeypatch, dont_write):
    """compiler/cache.py: a kernel module's Python bytecode is written beside it, even under
    PYTHONDONTWRITEBYTECODE, so loading it again compiles no source; a source that differs on
    disk is replaced, and so is its bytecode."""
    import importlib.machinery
    import importlib.util

    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", dont_write)
    compiled = []
    to_code = importlib.machinery.SourceFileLoader.source_to_code
    monkeypatch.setattr(importlib.machinery.SourceFileLoader, "source_to_code",
                        lambda self, *a, **k: compiled.append(self.path) or to_code(self, *a, **k))
    name, source = "fused_0_bytecode", "def fused_0_bytecode():\n    return 1\n"
    path = cache.cache_dir() / f"{name}.py"
    try:
        cache.load_module(name, source)
        assert Path(importlib.util.cache_from_source(str(path))).exists()
        cache._memo.pop(name)
        compiled.clear()
        cache.load_module(name, source)  # a new process's load: from the bytecode
        assert compiled == []
        cache._memo.pop(name)
        path.write_text("def fused_0_bytecode():\n    return 22\n")  # not the cache's text
        assert cache.load_module(name, source).fused_0_bytecode() == 1
    finally:
        cache._memo.pop(name, None)
