"""The cpu device flushes denormals to zero while it runs, as TF1's kernels do
(compiler/codegen_cpu_fpenv.py); the reference device computes as NumPy does."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
from compiler import codegen_cpu_threads
from compiler.codegen_cpu_fpenv import FLUSH, flush_mode, flushing_denormals

pytestmark = pytest.mark.skipif(flush_mode() is None, reason="no MXCSR on this processor")


@pytest.mark.parametrize("dtype,tiny,underflows", [(np.float32, 1e-40, -100.0),
                                                   (np.float64, 1e-310, -720.0)])
def test_the_cpu_device_flushes_denormals_and_the_reference_does_not(dtype, tiny, underflows):
    """A denormal input reads as zero (log gives -inf) and a denormal result becomes zero
    (exp of a large negative number), on the cpu device only, unless the session is asked
    not to; the caller's own mode is the same after the run."""
    with sg.Graph().as_default() as graph:
        x = sg.placeholder(dtype, [2])
        fetches = [sg.log(x), sg.exp(x)]
    feed = {x: np.array([tiny, underflows], dtype)}
    with np.errstate(all="ignore"):
        numpy = [np.log(feed[x]), np.exp(feed[x])]
    assert numpy[0][0] > -800 and 0 < numpy[1][1] < np.finfo(dtype).tiny  # denormal
    before = flush_mode()
    flushed = sg.Session(graph=graph, device="cpu").run(fetches, feed)
    assert flush_mode() == before
    assert flushed[0][0] == -np.inf and flushed[1][1] == 0
    for device, flush in (("reference", None), ("cpu", False)):
        got = sg.Session(graph=graph, device=device, flush_denormals=flush).run(fetches, feed)
        np.testing.assert_allclose(got[0], numpy[0], rtol=1e-5)
        assert got[1][1] == numpy[1][1]


def test_the_environment_turns_flushing_off(monkeypatch):
    monkeypatch.setenv("SYMGRAPH_FLUSH_DENORMALS", "0")
    assert not sg.Session(device="cpu").flush_denormals
    assert sg.Session(device="cpu", flush_denormals=True).flush_denormals
    monkeypatch.delenv("SYMGRAPH_FLUSH_DENORMALS")
    assert sg.Session(device="cpu").flush_denormals


def test_a_failed_run_restores_the_mode():
    with sg.Graph().as_default() as graph:
        x = sg.placeholder(sg.float32, [None, None])
        y = sg.matmul(x, np.ones((2, 3), np.float32))
    before = flush_mode()
    with pytest.raises(sg.errors.InvalidArgumentError):  # (1, 3) @ (2, 3), inside the run
        sg.Session(graph=graph, device="cpu").run(y, {x: np.ones((1, 3), np.float32)})
    assert flush_mode() == before


def test_parts_on_helper_threads_run_in_the_callers_mode():
    """run_in_parts' helpers take the caller's mode for the part, and give it back."""
    if codegen_cpu_threads.thread_budget() < 2:
        pytest.skip("one core: nothing runs in parts here")
    seen: list = []

    def part(first: int, last: int) -> None:
        seen.append(flush_mode())

    for enabled, want in ((True, FLUSH), (False, 0), (True, FLUSH)):
        seen.clear()
        with flushing_denormals(enabled):
            codegen_cpu_threads.run_in_parts(part, 2)
        assert seen == [want, want]
    seen.clear()
    codegen_cpu_threads.run_in_parts(part, 2)
    assert seen == [flush_mode()] * 2
