"""The benchmark harness cannot rot: each workload's correctness check runs at a tiny size on
the symgraph reference and cpu devices and NumPy by hand (no peers), and the parent process
runs each implementation in a persistent child process of its own, times them in rounds, and
drops a wrong one, a failing one and a silent one from the table."""

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
def test_workload_check_passes_at_a_tiny_size(key, tmp_path):
    """What each child does (build, save the results, time three rounds), here in-process, and
    the parent's check of what they saved."""
    mod = run.WORKLOADS[key]
    said = {}
    for impl in OURS:
        npz = tmp_path / f"{impl}.npz"
        replies: list[dict] = []
        requests = [json.dumps({"seconds": 0.0, "first": r == 0}) for r in range(3)]
        run.impl_child(key, impl, str(npz), True, [*requests, "quit"], replies.append)
        assert replies[0].get("ready") and len(replies) == 4, replies
        timing = run.harness.pooled([r["times"] for r in replies[1:]])
        assert timing.median_s > 0 and timing.reps >= 3 and timing.rounds == 3, timing
        with np.load(npz) as saved:
            said[impl] = {"results": {k: saved[k] for k in saved.files}}
    notes: list[str] = []
    assert run.check(mod, said, notes) == list(OURS), "\n".join(notes)


def test_implementations_are_timed_in_rounds_in_their_own_processes(tmp_path):
    """`--tiny` end to end, from a parent that records what its children said: one process per
    implementation, none of them the parent, which never imports a peer framework (the peers
    themselves are left out: importing torch and jax in children costs seconds); the times
    are pooled over three rounds, and a child that raises while timed (the reference's, sent
    a request without its seconds) is reported and left out, the others timed on."""
    out = tmp_path / "results.md"
    script = f"""
import json, os, sys
sys.path.insert(0, {str(ROOT)!r})
from benchmarks import harness, run
run.QUIET_S = 0.01
pids, built, ask = {{}}, harness.Child.built, harness.Child.ask
def spy(self, timeout_s):
    said = built(self, timeout_s)
    pids[self.impl] = said.get("pid")
    return said
def broken(self, request, timeout_s):
    if self.impl == "reference" and request:
        request = {{"first": request["first"]}}
    return ask(self, request, timeout_s)
harness.Child.built, harness.Child.ask = spy, broken
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
    assert proc.stdout.count("reps in 3 rounds") == 2, proc.stdout
    text = out.read_text()
    assert "process of its own" in text and "| W4 MLP forward" in text, text
    assert "w4 symgraph reference: FAILED while timed: KeyError: 'seconds'" in text, text
    ratios = next(line for line in text.splitlines() if "per-round ratios vs NumPy" in line)
    assert len(ratios.split(":")[-1].split("(")[0].split()) == 3, ratios


@pytest.mark.parametrize("n", [2, 3, 5, 6])
def test_turns_are_balanced(n):
    """In n rounds each implementation takes each place once, and none always follows the
    same one (which plain rotation would give); with an even n each follows each other once."""
    impls = [f"i{k}" for k in range(n)]
    rows = [run.round_order(impls, r) for r in range(2 * n)]
    for place in range(n):
        assert sorted(row[place] for row in rows[:n]) == impls
    pairs = [(a, b) for row in rows for a, b in zip(row, row[1:])]
    for impl in impls if n > 2 else []:  # of two, each can only follow the other
        assert len({a for a, b in pairs if b == impl}) > 1, (impl, rows)
    if n % 2 == 0:
        within = [(a, b) for row in rows[:n] for a, b in zip(row, row[1:])]
        assert len(set(within)) == len(within) == n * (n - 1), rows


def test_a_crashing_or_silent_child_becomes_a_failure(tmp_path):
    crashing = run.harness.Child("w9", "cpu", tmp_path / "x.npz", ["--tiny"])
    said = crashing.built(60)
    assert "results" not in said and "KeyError" in said["failed"], said
    silent = run.harness.Child("w4", "numpy", tmp_path / "y.npz", ["--tiny"])
    assert "results" in silent.built(60)
    said = silent.ask(None, 0.2)  # asked nothing, it says nothing
    assert said == {"failed": "no answer within 0.2 s (killed)"}, said
    assert silent.proc.returncode is not None
    for child in (crashing, silent):
        child.close()


def test_a_wrong_result_is_reported_and_left_out_of_the_table(monkeypatch):
    mod = run.WORKLOADS["w4"]
    logits = np.ones((2, 3), np.float32)
    said = {impl: {"pid": i, "ready": True, "results": {"logits": logits}}
            for i, impl in enumerate(OURS)}
    said["numpy"]["results"] = {"logits": logits * 1.01}
    said["jax"] = {"pid": 9, "failed": "RuntimeError: no compiler"}

    class FakeChild:
        def __init__(self, workload, impl, npz, flags):
            self.impl = impl

        def built(self, timeout_s):
            return said[self.impl]

        def ask(self, request, timeout_s):
            assert self.impl in ("cpu", "reference"), self.impl
            return {"times": [0.001 * (OURS.index(self.impl) + 1)] * 3}

        def quit(self):
            pass

        def close(self):
            pass

    monkeypatch.setattr(run.harness, "Child", FakeChild)
    monkeypatch.setattr(run.harness, "peer_missing",
                        lambda impl: "torch is not installed" if "torch" in impl else None)
    monkeypatch.setattr(run, "QUIET_S", 0.0)
    notes: list[str] = []
    row = run.bench_workload(mod, run.IMPLS, 1.0, notes, tiny=True)
    assert row.seconds == {"cpu": 0.001, "reference": 0.002}
    assert row.round_ratios("reference") == [2.0, 2.0, 2.0]
    text = "\n".join(notes)
    assert "w4 NumPy by hand: WRONG RESULT, not timed" in text
    assert "w4 JAX jit: FAILED to run: RuntimeError: no compiler" in text
    assert "w4 PyTorch eager: skipped, torch is not installed" in text
    assert "w4: per-round ratios vs symgraph reference: 2.00 2.00 2.00" in text


def test_check_catches_a_wrong_result():
    mod = run.WORKLOADS["w2"]
    results = {"reference": {"f": 1.0, "df/dx": [1.0, 2.0]},
               "cpu": {"f": 1.0, "df/dx": [1.0, 2.01]}}
    failures = run.harness.check_all(results, mod.TOLERANCES)
    assert list(failures) == ["cpu"] and "df/dx" in failures["cpu"]


def test_the_ratio_is_paired_round_by_round():
    """A drift of the machine's speed between rounds moves the pooled medians' ratio but not the
    median of the per-round ratios, which the table and the targets show."""
    row = run.harness.Row("W9 test", "ms per step", {"cpu": 0.003, "torch": 0.0025},
                          round_medians={"cpu": [0.001, 0.001, 0.003, 0.003, 0.003],
                                         "torch": [0.0012, 0.0012, 0.0036, 0.0036, 0.0025]})
    assert row.ratio("torch") == pytest.approx(1.2)
    assert "2.5 ms (1.20x)" in run.harness.render_table([row], ("cpu", "torch"))
    first = run.harness.Row("W9 test", "first step, cold", {"cpu": 2.0, "torch": 1.0}, unit="s")
    assert first.ratio("torch") == 0.5
