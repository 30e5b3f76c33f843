"""What every workload shares: timing, result checks, peers, the child processes, the machine,
and the results table.

Each workload module (w1_mlp, w2_elementwise, w3_cnn, w4_forward) builds one runner per
implementation; a runner has `result()` (named arrays from a fresh state, compared with the
symgraph reference before anything is timed) and `step()` (the thing timed).
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RUN_PY = Path(__file__).resolve().parent / "run.py"

# symgraph cpu first: the ratios in the table are (baseline time) / (symgraph cpu time).
IMPLS = ("cpu", "reference", "numpy", "torch", "torch.compile", "jax")
LABELS = {
    "cpu": "symgraph cpu",
    "reference": "symgraph reference",
    "numpy": "NumPy by hand",
    "torch": "PyTorch eager",
    "torch.compile": "torch.compile",
    "jax": "JAX jit",
}


class Skip(Exception):
    """An implementation that cannot run here; the message says why (shown under the table)."""


class CheckFailed(AssertionError):
    """An implementation's result disagrees with the symgraph reference: it is not timed."""


def peer_missing(impl: str) -> str | None:
    """Why a peer framework cannot be used (not installed), or None."""
    module = {"torch": "torch", "torch.compile": "torch", "jax": "jax"}.get(impl)
    if module and importlib.util.find_spec(module) is None:
        return f"{module} is not installed (`make bench` tries to install it)"
    return None


# -- checks ---------------------------------------------------------------------------------------
def compare(name: str, got: np.ndarray, want: np.ndarray, rtol: float) -> float:
    """Elementwise |got - want| <= rtol * (|want| + max|want|); returns the worst ratio to that
    bound (<= 1 passes). The max|want| term keeps near-zero elements from failing on noise."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    if got.shape != want.shape:
        raise CheckFailed(f"{name}: shape {got.shape}, expected {want.shape}")
    if not np.all(np.isfinite(got)):
        raise CheckFailed(f"{name}: {np.size(got) - np.isfinite(got).sum()} non-finite values")
    bound = rtol * (np.abs(want) + np.max(np.abs(want), initial=0.0)) + 1e-30
    worst = float(np.max(np.abs(got - want) / bound, initial=0.0))
    if worst > 1:
        idx = np.unravel_index(np.argmax(np.abs(got - want) / bound), want.shape)
        raise CheckFailed(f"{name}: at {tuple(int(i) for i in idx)} got {got[idx]:.7g}, "
                          f"expected {want[idx]:.7g} (rtol {rtol:g}, {worst:.3g}x over)")
    return worst


PEERS = ("torch", "torch.compile", "jax")


def check_all(results: dict[str, dict[str, np.ndarray]], tolerances: dict[str, float],
              oracle: str = "reference", peer_tolerances: dict[str, float] | None = None
              ) -> dict[str, str]:
    """Compares every implementation's results with the oracle's; returns impl -> failure.
    `peer_tolerances` loosen keys for the peer frameworks where their algorithm differs."""
    failures = {}
    want = results[oracle]
    for impl, got in results.items():
        if impl == oracle:
            continue
        tols = {**tolerances, **(peer_tolerances or {})} if impl in PEERS else tolerances
        try:
            for key, rtol in tols.items():
                if key in got:
                    compare(f"{LABELS[impl]} {key}", got[key], want[key], rtol)
        except CheckFailed as e:
            failures[impl] = str(e)
    return failures


# -- timing ---------------------------------------------------------------------------------------
@dataclass
class Timing:
    median_s: float
    reps: int
    spread: float  # (q3 - q1) / median: how noisy the repetitions were
    rounds: int  # how many time windows the repetitions came from


def time_boxed(step: Callable[[], object], budget_s: float, min_reps: int = 3,
               max_reps: int = 2000, warmup: int = 2) -> list[float]:
    """Wall times of `step()`: after `warmup` calls, repeats until the budget is spent (at
    least min_reps, at most max_reps), so slow implementations cannot stall the run."""
    for _ in range(warmup):
        step()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps
                                      or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def pooled(rounds: list[list[float]]) -> Timing:
    """Median and spread of every repetition of every round together: a slow spell of the
    machine that spans one round moves the median of all of them little."""
    times = [t for r in rounds for t in r]
    med = statistics.median(times)
    q = np.percentile(times, [25, 75])
    return Timing(med, len(times), float((q[1] - q[0]) / med), len(rounds))


def first_step_subprocess(workload: str, impl: str, env: dict[str, str],
                          timeout_s: float = 400) -> dict:
    """Runs `run.py --first-step` in a fresh process (nothing compiled, nothing imported) and
    returns what it printed: {"seconds": ..., "import_s": ..., "loss": ...}."""
    proc = subprocess.run([sys.executable, str(RUN_PY), "--first-step", workload, impl],
                          env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout_s)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"first step of {workload} {impl} failed: " + " | ".join(tail))
    return json.loads(lines[-1])


class Child:
    """One implementation of one workload in a persistent process of its own (`run.py --child`):
    it builds its runner, saves its results to `npz` and replies, then times its step each time
    it is asked, until it reads "quit" or the end of its stdin (so it also ends when the parent
    dies). Replies are JSON lines on its stdout, which it keeps for them alone; its stderr goes
    to a file beside `npz`, for the last words of one that dies. The environment passes through
    unchanged ($SYMGRAPH_CACHE_DIR included)."""

    def __init__(self, workload: str, impl: str, npz: Path, flags: list[str]) -> None:
        self.impl, self.npz = impl, npz
        self.err = npz.with_suffix(".err")
        with open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(RUN_PY), "--child", workload, impl, str(npz), *flags],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
        self.replies: queue.Queue[str | None] = queue.Queue()
        # A thread reads the replies, so that waiting for one can time out.
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.replies.put(line)
        self.replies.put(None)

    def ask(self, request: dict | None, timeout_s: float) -> dict:
        """Sends `request` (None: sends nothing and waits for the reply to the start) and returns
        the child's reply; one that dies or does not answer within `timeout_s` is killed, and
        the reply is {"failed": why}."""
        if request is not None:
            try:
                self.proc.stdin.write(json.dumps(request) + "\n")
                self.proc.stdin.flush()
            except OSError:  # it is dead: its end of stdout says why
                pass
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self.replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                return {"failed": f"no answer within {timeout_s:.1f} s (killed)"}
            if line is None:
                return {"failed": self._last_words()}
            try:
                said = json.loads(line)
            except ValueError:
                continue
            if isinstance(said, dict):
                return said

    def built(self, timeout_s: float) -> dict:
        """The reply to the start: {"pid", and "ready" or "skipped" or "failed"}, with "results"
        (the arrays it saved) when it is ready."""
        said = self.ask(None, timeout_s)
        if "ready" in said:
            try:
                with np.load(self.npz, allow_pickle=False) as saved:
                    said["results"] = {key: saved[key] for key in saved.files}
            except Exception as e:
                said["failed"] = f"its saved results are unreadable: {type(e).__name__}: {e}"
        return said

    def _last_words(self) -> str:
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # it closed its stdout but lives on
            self.kill()
            code = self.proc.returncode
        tail = self.err.read_text(errors="replace").strip().splitlines()[-3:]
        return f"exit status {code}: " + " | ".join(tail)[-300:]

    def quit(self) -> None:
        """Tells the child to quit, without waiting for it (its teardown overlaps others')."""
        if not self.proc.stdin.closed:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
            except OSError:  # it is dead
                pass

    def close(self, timeout_s: float = 30) -> None:
        """Tells the child to quit and reaps it; one that lingers is killed."""
        self.quit()
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.quit()  # only closes our end of its stdin


@contextmanager
def children(workload: str, impls: list[str], flags: list[str]) -> Iterator[dict[str, Child]]:
    """Starts one Child per implementation, all at once (their builds overlap); on the way out
    tells them to quit, or kills them if the parent raised, so that none outlives the run."""
    with tempfile.TemporaryDirectory(prefix="symgraph-bench-") as folder:
        kids: dict[str, Child] = {}
        try:
            for impl in impls:
                kids[impl] = Child(workload, impl, Path(folder) / f"{workload}-{impl}.npz", flags)
            yield kids
        except BaseException:
            for kid in kids.values():
                kid.kill()
            raise
        finally:
            for kid in kids.values():
                kid.quit()
            for kid in kids.values():
                kid.close()


# -- the machine ----------------------------------------------------------------------------------
def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    """CPU model, cores and package versions: a table means nothing without them."""
    model = platform.processor() or "unknown"
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = line
    except OSError:
        pass
    simd = [f for f in ("avx2", "avx512f", "fma") if f" {f}" in flags]
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": model + (f" ({', '.join(simd)})" if simd else ""),
        "cores": f"{usable} usable of {os.cpu_count()}",
        "python": platform.python_version(),
        "versions": ", ".join(f"{d} {_version(d)}" for d in
                              ("numpy", "numba", "scipy", "torch", "jax", "jaxlib")),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "load": load_average(),
    }


def load_average() -> str:
    """The 1-minute load average: other processes on these cores skew every number."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "unknown"


# -- the table ------------------------------------------------------------------------------------
@dataclass
class Row:
    """One measured quantity of one workload, in seconds (lower is better) for each impl."""

    workload: str
    metric: str
    seconds: dict[str, float] = field(default_factory=dict)
    unit: str = "ms"  # how to show it: "ms" or "s"
    per_second: bool = False  # also show 1/seconds (steps/s) for symgraph cpu
    round_medians: dict[str, list[float]] = field(default_factory=dict)  # impl -> one a round

    def round_ratios(self, impl: str) -> list[float]:
        """impl's time / symgraph cpu's, round by round: both were timed in the same round, so
        a slow spell of the machine that spans a round weighs on both."""
        ours, theirs = self.round_medians.get("cpu"), self.round_medians.get(impl)
        if impl == "cpu" or not ours or not theirs:
            return []
        return [t / o for t, o in zip(theirs, ours)]

    def ratio(self, impl: str) -> float:
        """How many times faster symgraph cpu is than `impl` (impl's time / cpu's): the median
        of the per-round ratios, a paired comparison that a drift of the machine's speed
        between rounds leaves alone; the pooled medians' ratio where there are no rounds
        (first steps)."""
        ratios = self.round_ratios(impl)
        return statistics.median(ratios) if ratios else self.seconds[impl] / self.seconds["cpu"]


def _fmt(seconds: float, unit: str) -> str:
    value = seconds * 1e3 if unit == "ms" else seconds
    return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"


def render_table(rows: list[Row], impls: tuple[str, ...] = IMPLS) -> str:
    """Markdown: one column per implementation; each baseline's cell shows its time and, in
    parentheses, how many times faster symgraph cpu is (Row.ratio; < 1: slower)."""
    head = "| workload | metric | " + " | ".join(LABELS[i] for i in impls) + " |"
    lines = [head, "|" + "---|" * (len(impls) + 2)]
    for row in rows:
        ours = row.seconds.get("cpu")
        cells = []
        for impl in impls:
            t = row.seconds.get(impl)
            if t is None:
                cells.append("-")
                continue
            text = _fmt(t, row.unit)
            if impl == "cpu" and row.per_second:
                text += f" ({1 / t:.0f}/s)"
            elif impl != "cpu" and ours:
                text += f" ({row.ratio(impl):.2f}x)"
            cells.append(text)
        lines.append(f"| {row.workload} | {row.metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def atomic_write(path: Path, text: str) -> None:
    """Readers (and an interrupted run) see the old file or the new one, never half of one."""
    from symgraph.files import write_atomically

    write_atomically(path, text)
