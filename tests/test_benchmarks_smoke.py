"""The benchmark harness cannot rot: each workload's correctness check runs at a tiny size on
the symgraph reference and cpu devices and NumPy by hand (no peers, no timing)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/ is not installed

from benchmarks import run  # noqa: E402


@pytest.mark.parametrize("key", sorted(run.WORKLOADS))
def test_workload_check_passes_at_a_tiny_size(key):
    mod = run.WORKLOADS[key]
    notes: list[str] = []
    runners = run.check(mod, mod.problem(**mod.TINY), ("cpu", "reference", "numpy"), notes)
    assert set(runners) == {"cpu", "reference", "numpy"}, "\n".join(notes)
    for runner in runners.values():
        runner.step()  # what the benchmark times runs too


def test_check_catches_a_wrong_result():
    mod = run.WORKLOADS["w2"]
    results = {"reference": {"f": 1.0, "df/dx": [1.0, 2.0]},
               "cpu": {"f": 1.0, "df/dx": [1.0, 2.01]}}
    failures = run.harness.check_all(results, mod.TOLERANCES)
    assert list(failures) == ["cpu"] and "df/dx" in failures["cpu"]
