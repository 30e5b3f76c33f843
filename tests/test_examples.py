"""examples/basics.py runs as a user runs it, and its checks can fail."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import symgraph as sg

ROOT = Path(__file__).resolve().parent.parent
BASICS = ROOT / "examples" / "basics.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BASICS), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_basics_quiet_prints_only_the_final_check_line():
    out = _run("--quiet")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == ["basics: all 5 checks passed"]


def test_basics_prints_every_example_and_a_summary_table():
    out = _run("--seed", "7")
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert text.count("[ok]") == 5 and "FAILED" not in text
    for words in ("f = -12", "df/dz = 3", "dc/dx", "2x + 1", "d^3/dx^3 = 6", "relative error"):
        assert words in text
    assert "id  op" in text and "multiply" in text  # the sg.summary table of f
    assert text.splitlines()[-1] == "basics: all 5 checks passed"


@pytest.fixture
def basics_module():
    spec = importlib.util.spec_from_file_location("basics_under_test", BASICS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_basics_exits_non_zero_when_a_check_fails(basics_module, monkeypatch, capsys):
    sg.reset_default_graph()
    monkeypatch.setattr(basics_module, "GRADCHECK_TOLERANCE", 0.0)  # nothing can be that exact
    assert basics_module.main(["--quiet"]) == 1
    line = capsys.readouterr().out.strip()
    assert line.startswith("basics: 1 of 5 checks FAILED") and "tanh" in line
