"""Runs symgraph's benchmarks W1-W4 against its reference executor, NumPy by hand, PyTorch
(eager and torch.compile) and JAX, and writes benchmarks/results.md.

    python benchmarks/run.py                  # everything (`make bench`), < 15 min on 2 cores
    python benchmarks/run.py --only w2 --budget 2 --no-first-step

Every implementation of a workload is built, checked and timed in its own fresh process (the
hidden `--child` argument), one after another; this process gathers their results and imports
no peer framework. Every implementation's result is checked against the symgraph reference;
one that disagrees is reported and left out of the table. Times are medians; the ratio in a
baseline's cell is (baseline time) / (symgraph cpu time): above 1, symgraph is faster.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks import harness, w1_mlp, w2_elementwise, w3_cnn, w4_forward  # noqa: E402
from benchmarks.harness import IMPLS, LABELS, Row, Skip  # noqa: E402

WORKLOADS = {m.KEY: m for m in (w1_mlp, w2_elementwise, w3_cnn, w4_forward)}
FIRST_STEP = {"w1": ("cpu", "torch", "torch.compile", "jax"),
              "w3": ("cpu", "torch", "torch.compile", "jax")}
# The reference runs W3 op by op with NumPy (~0.1 s a step): fewer repetitions.
SLOW = {("w3", "reference"), ("w3", "numpy")}
RESULTS = Path(__file__).resolve().parent / "results.md"


def _short(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def check(mod, said: dict[str, dict], notes: list[str]) -> list[str]:
    """Checks the results each implementation's process saved (`said`, impl -> what its child
    said) against the symgraph reference's (NumPy by hand's if the reference did not run).
    Returns the implementations that agree; skips, failures and wrong results go into `notes`."""
    results = {}
    for impl, out in said.items():
        if "skipped" in out:
            notes.append(f"{mod.KEY} {LABELS[impl]}: skipped, {out['skipped']}")
        elif "results" not in out:  # a peer that fails to compile, or a symgraph bug: say it
            notes.append(f"{mod.KEY} {LABELS[impl]}: FAILED to run: {out['failed']}")
        else:
            results[impl] = out["results"]
    oracle = "reference" if "reference" in results else "numpy"
    if oracle not in results:
        notes.append(f"{mod.KEY}: no oracle ran (reference and NumPy both failed): not timed")
        return []
    failures = harness.check_all(results, mod.TOLERANCES, oracle,
                                 getattr(mod, "PEER_TOLERANCES", None))
    for impl, why in failures.items():
        notes.append(f"{mod.KEY} {LABELS[impl]}: WRONG RESULT, not timed: {why}")
    agree = [impl for impl in results if impl not in failures]
    checked = ", ".join(f"{k} (rtol {v:g})" for k, v in mod.TOLERANCES.items())
    notes.append(f"{mod.KEY}: checked {checked} of {', '.join(LABELS[i] for i in agree)} "
                 f"against {LABELS[oracle]}")
    return agree


def run_children(mod, impls: tuple[str, ...], budget_s: float, tiny: bool = False,
                 checked: tuple[str, ...] = ()) -> dict[str, dict]:
    """Each implementation in its own fresh process, one after another, so that none runs
    beside another's threads or libraries (PyTorch's libgomp, loaded first, is the OpenMP
    Numba's parallel loops then use, and its spinning threads slow symgraph's BLAS calls).
    Those in `checked` only are built and checked, not timed. Returns impl -> what its child
    said, with the result arrays it saved; the parent imports no peer framework itself."""
    said = {}
    with tempfile.TemporaryDirectory(prefix="symgraph-bench-") as folder:
        for impl in (i for i in IMPLS if i in impls or i in checked):
            reason = harness.peer_missing(impl)
            if reason:
                said[impl] = {"skipped": reason}
                continue
            flags = ["--budget", repr(budget_s), *(["--tiny"] if tiny else []),
                     *([] if impl in impls else ["--check-only"])]
            said[impl] = harness.impl_subprocess(mod.KEY, impl,
                                                 Path(folder) / f"{mod.KEY}-{impl}.npz", flags)
    return said


def bench_workload(mod, impls: tuple[str, ...], budget_s: float, notes: list[str],
                   tiny: bool = False) -> Row:
    """Checks every implementation of one workload, then reports the times of those that
    agree (each child times itself right after saving its results; a wrong one's is dropped)."""
    said = run_children(mod, impls, budget_s, tiny, checked=("reference",))  # the oracle always
    agree = check(mod, said, notes)
    row = Row(mod.TITLE, "", per_second=hasattr(mod, "LR"))
    row.metric = "ms per step" if row.per_second else "ms per evaluation"
    for impl in (i for i in agree if i in impls):
        out = said[impl]
        if "failed" in out:
            notes.append(f"{mod.KEY} {LABELS[impl]}: FAILED while timed: {out['failed']}")
            continue
        row.seconds[impl] = out["median_s"]
        print(f"  {mod.KEY} {LABELS[impl]:<20} {out['median_s'] * 1e3:9.3f} ms  "
              f"({out['reps']} reps, IQR {100 * out['spread']:.0f}% of median)", flush=True)
    return row


def time_step(key: str, impl: str, step, budget_s: float) -> harness.Timing:
    """The timing rules: `budget_s` of repetitions after warm-up calls; the slow ones (SLOW)
    get half the budget and fewer repetitions."""
    slow = (key, impl) in SLOW
    return harness.time_boxed(step, budget_s / 2 if slow else budget_s,
                              min_reps=3 if slow else 10, warmup=1 if slow else 3)


def impl_child(key: str, impl: str, npz: str, budget_s: float, tiny: bool, timed: bool) -> None:
    """In a fresh process (`--child`): builds one implementation of one workload on the
    workload's fixed-seed problem, saves `runner.result()` to `npz` for the parent to check,
    then (if `timed`) times `runner.step`. Prints one JSON line: the timing, or why not."""
    mod = WORKLOADS[key]
    out: dict = {"pid": os.getpid()}
    try:
        runner = mod.make(impl, mod.problem(**(mod.TINY if tiny else {})))
        np.savez(npz, **runner.result())
    except Skip as e:
        out["skipped"] = str(e)
    except Exception as e:
        out["failed"] = _short(e)
    else:
        try:
            if timed:
                t = time_step(key, impl, runner.step, budget_s)
                out.update(median_s=t.median_s, reps=t.reps, spread=t.spread)
        except Exception as e:
            out["failed"] = _short(e)
    print(json.dumps(out), flush=True)


def first_step_rows(key: str, notes: list[str]) -> list[Row]:
    """Cold (empty caches) and warm (a new process on the same caches) first training steps,
    each in a fresh process: graph or model construction, compilation and one step."""
    title = WORKLOADS[key].TITLE
    cold, warm = Row(title, "first step, cold", unit="s"), Row(title, "first step, warm", unit="s")
    for impl in FIRST_STEP[key]:
        reason = harness.peer_missing(impl)
        if reason:
            continue  # already said in the workload's notes
        with tempfile.TemporaryDirectory(prefix="symgraph-bench-") as cache:
            try:
                for row in (cold, warm):
                    out = harness.first_step_subprocess(key, impl, {"BENCH_CACHE_DIR": cache})
                    row.seconds[impl] = out["seconds"]
                    print(f"  {key} {LABELS[impl]:<20} {row.metric}: {out['seconds']:.2f} s "
                          f"(import {out['import_s']:.2f} s, not counted)", flush=True)
            except Exception as e:
                notes.append(f"{key} {LABELS[impl]} first step: FAILED: {_short(e)}")
    return [cold, warm]


def first_step_child(key: str, impl: str) -> None:
    """In a fresh process: import the framework (timed apart), then time construction, compile
    and one step. Caches go under $BENCH_CACHE_DIR, so cold means empty and warm means filled."""
    cache = os.environ["BENCH_CACHE_DIR"]
    os.environ["SYMGRAPH_CACHE_DIR"] = os.path.join(cache, "symgraph")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(cache, "inductor")
    t0 = time.perf_counter()
    if impl in ("torch", "torch.compile"):
        import torch  # noqa: F401
    elif impl == "jax":
        import jax

        jax.config.update("jax_compilation_cache_dir", os.path.join(cache, "jax"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    else:
        import symgraph  # noqa: F401
    import_s = time.perf_counter() - t0
    mod = WORKLOADS[key]
    p = mod.problem()
    t0 = time.perf_counter()
    mod.make(impl, p).step()
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "import_s": import_s}))


def targets(rows: dict[tuple[str, str], Row]) -> list[str]:
    """Issue 4, point 8: each target, what was measured, met or not."""
    out = []

    def ratio(key, metric, peer, need, what):
        row = rows.get((key, metric))
        if row is None or "cpu" not in row.seconds or peer not in row.seconds:
            out.append(f"- {what}: not measured ({LABELS[peer]} or symgraph cpu missing)")
            return
        r = row.seconds[peer] / row.seconds["cpu"]
        verdict = "met" if r >= need else "MISSED"
        out.append(f"- {what}: {r:.2f}x ({verdict})")

    def limit(key, metric, seconds, what):
        row = rows.get((key, metric))
        if row is None or "cpu" not in row.seconds:
            out.append(f"- {what}: not measured")
            return
        t = row.seconds["cpu"]
        out.append(f"- {what}: {t:.2f} s ({'met' if t < seconds else 'MISSED'})")

    ratio("w1", "ms per step", "torch", 1.1, "W1 at least 1.1x PyTorch eager")
    ratio("w2", "ms per evaluation", "torch.compile", 2.0, "W2 at least 2x torch.compile")
    ratio("w2", "ms per evaluation", "numpy", 8.0, "W2 at least 8x NumPy")
    ratio("w3", "ms per step", "torch", 1.0, "W3 at least on par with PyTorch eager")
    ratio("w4", "ms per evaluation", "torch", 1.0, "W4 at least on par with PyTorch eager")
    limit("w1", "first step, cold", 3.0, "W1 first step cold under 3 s")
    limit("w1", "first step, warm", 0.5, "W1 first step warm under 0.5 s")
    limit("w3", "first step, cold", 6.0, "W3 first step cold under 6 s")
    return out


def report(rows: list[Row], notes: list[str], command: str, tiny: bool = False) -> str:
    info = harness.machine()
    goals = (["Not evaluated: --tiny problems only show that the harness runs."] if tiny
             else targets({(r.workload.split()[0].lower(), r.metric): r for r in rows}))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if info["load"] != "unknown" and float(info["load"]) > cores:
        goals.insert(0, f"**The load average ({info['load']}) was above the {cores} cores: "
                        "other processes shared them, so these verdicts are not trustworthy.**\n")
    return "\n".join([
        "# symgraph benchmarks" + (" (--tiny: NOT the real sizes)" if tiny else ""),
        "",
        f"- date: {info['date']}",
        f"- machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}",
        f"- versions: {info['versions']}",
        f"- command: `{command}`",
        "",
        "Medians of repeated runs. In each baseline's cell, (Nx) is baseline time / symgraph "
        "cpu time: above 1, symgraph cpu is faster. First steps run in a fresh process: model "
        "or graph construction, compilation and one training step, imports not counted; cold "
        "= empty kernel/compile caches, warm = a second process on the caches the first filled.",
        "",
        "Every implementation of every workload is built, checked and timed in its own fresh "
        "process, one after another: none shares a process with another framework's threads "
        "or libraries.",
        "",
        harness.render_table(rows),
        "",
        "## Targets (issue 4, point 8)",
        "",
        *goals,
        "",
        "## Checks, skips and failures",
        "",
        *(f"- {n}" for n in notes),
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(WORKLOADS), help="e.g. w1,w3")
    parser.add_argument("--impls", default=",".join(IMPLS), help="e.g. cpu,reference,torch")
    parser.add_argument("--budget", type=float, default=6.0,
                        help="seconds of timed repetitions per implementation and workload")
    parser.add_argument("--no-first-step", action="store_true")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny problems, no first steps: does the harness work?")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--first-step", nargs=2, metavar=("WORKLOAD", "IMPL"),
                        help=argparse.SUPPRESS)  # the child process of the first-step rows
    parser.add_argument("--child", nargs=3, metavar=("WORKLOAD", "IMPL", "NPZ"),
                        help=argparse.SUPPRESS)  # the child process of one table cell
    parser.add_argument("--check-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.first_step:
        first_step_child(*args.first_step)
        return 0
    if args.child:
        impl_child(*args.child, args.budget, args.tiny, timed=not args.check_only)
        return 0

    started = time.perf_counter()
    load_at_start = harness.load_average()
    impls = tuple(i for i in IMPLS if i in args.impls.split(","))
    rows: list[Row] = []
    notes: list[str] = []
    for key in args.only.split(","):
        mod = WORKLOADS[key]
        print(f"{mod.TITLE}", flush=True)
        rows.append(bench_workload(mod, impls, args.budget, notes, args.tiny))
        if key in FIRST_STEP and not (args.no_first_step or args.tiny):
            rows += first_step_rows(key, notes)
    command = " ".join(["python benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])
    notes.append(f"whole run: {time.perf_counter() - started:.0f} s; 1-minute load average "
                 f"{load_at_start} at the start, {harness.load_average()} at the end (above the "
                 "core count, other processes shared the cores and the times are inflated)")
    text = report(rows, notes, command, args.tiny)
    print()
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    harness.atomic_write(args.out, text)
    failed = any("WRONG RESULT" in n or "no oracle" in n for n in notes)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
