"""The cuda device in `make test`: tests/cuda_checks_*.py under Numba's CUDA simulator, in a
subprocess (NUMBA_ENABLE_CUDASIM must be set before numba is first imported, and this process
has imported numba for the cpu device), and the clear error where no GPU can be used.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import symgraph as sg

ROOT = Path(__file__).resolve().parent.parent
needs_numba_cuda = pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None,
                                      reason="numba-cuda (the cuda extra) is not installed")
# the device's checks, a file per topic (`make test-gpu` runs the same glob on a GPU)
CUDA_CHECKS = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("tests/cuda_checks_*.py"))


def _python(code_or_args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *code_or_args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, **env})


@needs_numba_cuda
def test_cuda_device_under_the_simulator() -> None:
    """The op table, the shape ops' and integer reductions' edge cases (rows split over blocks
    too), MLP, CNN and slice/concat model training steps (no op on the host), the random ops,
    the buffer pool (buffers reused within a run, never while a view, fetch or variable needs
    them), variables on the device and optimizer updates in their own buffers (a copy where
    the old value is still read) (tests/cuda_checks_*.py), on the simulator: ~35 s."""
    assert CUDA_CHECKS, "no tests/cuda_checks_*.py"  # pytest without files would run them all
    out = _python(["-m", "pytest", "-q", "-p", "no:cacheprovider", *CUDA_CHECKS],
                  NUMBA_ENABLE_CUDASIM="1", SYMGRAPH_CUDA_TESTS="1")
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    assert " passed" in out.stdout and "skipped" not in out.stdout.splitlines()[-1]


def test_session_on_cuda_without_a_gpu_says_why() -> None:
    """No GPU and no simulator: a RuntimeError that says what is missing and what to do."""
    code = ("import symgraph as sg\n"
            "assert not sg.cuda.is_available()\n"
            "try:\n"
            "    sg.Session(device='cuda')\n"
            "except RuntimeError as e:\n"
            "    print(e)\n")
    out = _python(["-c", code], NUMBA_DISABLE_CUDA="1", NUMBA_ENABLE_CUDASIM="0")
    assert out.returncode == 0, out.stderr
    message = out.stdout.strip()
    assert message.startswith("Session(device='cuda') cannot run here: "), message
    assert "NUMBA_ENABLE_CUDASIM=1" in message or "cuda extra" in message, message


def test_cuda_is_a_known_device_and_import_stays_light() -> None:
    """"cuda" is a device name; sg.cuda answers without numba having been imported by
    `import symgraph` (tests/test_imports.py checks the import itself)."""
    from runtime.session import DEVICES

    assert "cuda" in DEVICES
    assert callable(sg.cuda.is_available) and callable(sg.cuda.unavailable_reason)
