"""The benchmark harness cannot rot: each workload's correctness check runs at a tiny size on
the symgraph reference and cpu devices and NumPy by hand (no peers), and the parent process
runs each implementation in a child process of its own and drops a wrong one from the table."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # benchmarks/ is not installed

from benchmarks import run  # noqa: E402

OURS = ("cpu", "reference", "numpy")


@pytest.mark.parametrize("key", sorted(run.WORKLOADS))
def test_workload_check_passes_at_a_tiny_size(key, tmp_path, capsys):
    """What each child does (build, save the results, time), here in-process, and the
    parent's check of what they saved."""
    mod = run.WORKLOADS[key]
    said = {}
    for impl in OURS:
        npz = tmp_path / f"{impl}.npz"
        run.impl_child(key, impl, str(npz), budget_s=0.0, tiny=True, timed=True)
        said[impl] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        with np.load(npz) as saved:
            said[impl]["results"] = {k: saved[k] for k in saved.files}
        assert said[impl]["median_s"] > 0 and said[impl]["reps"] >= 3, said[impl]
    notes: list[str] = []
    assert run.check(mod, said, notes) == list(OURS), "\n".join(notes)


def test_each_implementation_runs_in_its_own_process(tmp_path):
    """`--tiny` end to end, from a parent that records what its children said: one process
    per implementation, none of them the parent, which never imports a peer framework (the
    peers themselves are left out: importing torch and jax in children costs seconds)."""
    out = tmp_path / "results.md"
    script = f"""
import json, os, sys
sys.path.insert(0, {str(ROOT)!r})
from benchmarks import harness, run
pids, real = {{}}, harness.impl_subprocess
def spy(workload, impl, *args, **kwargs):
    said = real(workload, impl, *args, **kwargs)
    pids[impl] = said.get("pid")
    return said
harness.impl_subprocess = spy
rc = run.main(["--tiny", "--only", "w4", "--impls", "cpu,reference,numpy",
               "--budget", "0.05", "--out", {str(out)!r}])
peers = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "jax", "jaxlib"))
print(json.dumps({{"rc": rc, "pids": pids, "parent": os.getpid(), "peers": peers}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=os.environ, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["rc"] == 0 and got["peers"] == [], got
    pids = [got["pids"][impl] for impl in OURS]
    assert None not in pids and len(set(pids)) == 3 and got["parent"] not in pids, got
    text = out.read_text()
    assert "own fresh process" in text and "| W4 MLP forward" in text, text


def test_a_crashing_child_becomes_a_failure(tmp_path):
    said = run.harness.impl_subprocess("w9", "cpu", tmp_path / "x.npz", ["--tiny"])
    assert "results" not in said and "KeyError" in said["failed"], said


def test_a_wrong_result_is_reported_and_left_out_of_the_table(monkeypatch):
    mod = run.WORKLOADS["w4"]
    logits = np.ones((2, 3), np.float32)
    said = {impl: {"pid": i, "median_s": 0.001 * (i + 1), "reps": 10, "spread": 0.0,
                   "results": {"logits": logits}} for i, impl in enumerate(OURS)}
    said["numpy"]["results"] = {"logits": logits * 1.01}
    said["jax"] = {"pid": 9, "failed": "RuntimeError: no compiler"}
    said["torch"] = {"pid": 8, "skipped": "torch is not installed"}
    monkeypatch.setattr(run, "run_children", lambda *args, **kwargs: said)
    notes: list[str] = []
    row = run.bench_workload(mod, run.IMPLS, 1.0, notes, tiny=True)
    assert row.seconds == {"cpu": 0.001, "reference": 0.002}
    text = "\n".join(notes)
    assert "w4 NumPy by hand: WRONG RESULT, not timed" in text
    assert "w4 JAX jit: FAILED to run: RuntimeError: no compiler" in text
    assert "w4 PyTorch eager: skipped, torch is not installed" in text


def test_check_catches_a_wrong_result():
    mod = run.WORKLOADS["w2"]
    results = {"reference": {"f": 1.0, "df/dx": [1.0, 2.0]},
               "cpu": {"f": 1.0, "df/dx": [1.0, 2.01]}}
    failures = run.harness.check_all(results, mod.TOLERANCES)
    assert list(failures) == ["cpu"] and "df/dx" in failures["cpu"]
