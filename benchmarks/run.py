"""Runs symgraph's benchmarks W1-W4 against its reference executor, NumPy by hand, PyTorch
(eager and torch.compile) and JAX, and writes benchmarks/results.md.

    python benchmarks/run.py                  # everything (`make bench`), < 15 min on 2 cores
    python benchmarks/run.py --only w2 --budget 2 --no-first-step

Every implementation of a workload runs in a process of its own (the hidden `--child`
argument; never two frameworks in one process: PyTorch's libgomp and spinning threads slow the
others), all of a workload's alive at once: each builds its runner and saves its results, which
this process (it imports no peer framework) checks against the symgraph reference; one that
disagrees is reported and left out of the table. Then the agreeing ones are timed side by side,
in R = max(3, round(budget)) rounds: in each, every one in turn, in an order that changes from
round to round (round_order), times its step for budget / R seconds, after a quiet gap
(QUIET_S) in which the last one's threads fall asleep; the idle ones wait on their stdin. A
slow spell of this shared machine (seconds long, ~1.5x) then weighs on one round of a few
implementations, not on one implementation's whole time.

Times are medians of every repetition of every round pooled. The ratio in a baseline's cell,
and the one the targets judge, is paired: the median over the rounds of (the baseline's median
in the round) / (symgraph cpu's median in the same round); above 1, symgraph is faster. The
machine's speed drifts between rounds (sustained load slows it, README), which a paired ratio
leaves alone and a ratio of pooled medians does not: in one run W1's pooled ratio was 0.94x
while five of its six rounds gave 1.09-1.26x. The pooled ratio is printed beside it, and every
round's ratio is listed in the notes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
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
QUIET_S = 0.2  # before each turn: the last one's spinning BLAS/OpenMP threads go to sleep
TIMEOUT_S = 600.0  # a workload's builds and warm-ups, beyond its timed budget: then killed


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


def bench_workload(mod, impls: tuple[str, ...], budget_s: float, notes: list[str],
                   tiny: bool = False) -> Row:
    """Starts a child per implementation (and the reference's, the oracle, always), checks what
    they saved, lets those that agree time their steps in rounds and pools each one's times."""
    wanted = [i for i in IMPLS if i in impls or i == "reference"]
    missing = {i: {"skipped": why} for i in wanted if (why := harness.peer_missing(i))}
    deadline = time.monotonic() + TIMEOUT_S + 2 * budget_s * len(wanted)
    start = [i for i in wanted if i not in missing]
    with harness.children(mod.KEY, start, ["--tiny"] if tiny else []) as kids:
        said = {i: missing[i] if i in missing else kids[i].built(deadline - time.monotonic())
                for i in wanted}
        agree = check(mod, said, notes)
        timed = [i for i in agree if i in impls]
        for impl in start:
            if impl not in timed:  # the oracle only checked, or wrong: its memory back now
                kids[impl].close()
        times = time_rounds(mod.KEY, {i: kids[i] for i in timed}, budget_s, deadline, notes)
    row = Row(mod.TITLE, "", per_second=hasattr(mod, "LR"))
    row.metric = "ms per step" if row.per_second else "ms per evaluation"
    for impl, rounds in times.items():  # in IMPLS order: symgraph cpu first
        t = harness.pooled(rounds)
        row.seconds[impl] = t.median_s
        row.round_medians[impl] = [statistics.median(r) for r in rounds]
        line = (f"  {mod.KEY} {LABELS[impl]:<20} {t.median_s * 1e3:9.3f} ms  ({t.reps} reps in "
                f"{t.rounds} rounds, IQR {100 * t.spread:.0f}% of median)")
        ratios = row.round_ratios(impl)
        if ratios:
            pooled = t.median_s / row.seconds["cpu"]
            line += f"  {pooled:.2f}x pooled, {statistics.median(ratios):.2f}x per-round median"
            notes.append(f"{mod.KEY}: per-round ratios vs {LABELS[impl]}: "
                         + " ".join(f"{r:.2f}" for r in ratios)
                         + f" (median {statistics.median(ratios):.2f}, pooled {pooled:.2f})")
        print(line, flush=True)
    return row


def round_order(impls: list[str], r: int) -> list[str]:
    """Round r's turns: row r of a Williams design (a balanced Latin square), so that in
    len(impls) rounds each implementation takes each place once and none always follows the
    same one (with an even count, each follows each other one once; an odd count needs the
    mirrored rows, taken every other len(impls) rounds). Plain rotation would have each one
    follow the same neighbour in all rounds but one."""
    n = len(impls)
    first = [0] + [(k + 1) // 2 if k % 2 else n - k // 2 for k in range(1, n)]
    row = [impls[(f + r) % n] for f in first]
    return row[::-1] if n % 2 and (r // n) % 2 else row


def time_rounds(key: str, kids: dict[str, harness.Child], budget_s: float, deadline: float,
                notes: list[str]) -> dict[str, list[list[float]]]:
    """Side by side: R rounds in which each child in turn (round_order) times its step for
    budget / R seconds, after a quiet gap. Returns impl -> the step times of each round; one
    that fails or does not answer by `deadline` is noted, reaped and left out."""
    rounds = max(3, round(budget_s))
    order = list(kids)
    times: dict[str, list[list[float]]] = {impl: [] for impl in order}
    for r in range(rounds):
        for impl in round_order(order, r):
            if impl not in times:
                continue
            time.sleep(QUIET_S)
            said = kids[impl].ask({"seconds": budget_s / rounds, "first": r == 0},
                                  deadline - time.monotonic())
            if "times" in said:
                times[impl].append(said["times"])
            else:
                notes.append(f"{key} {LABELS[impl]}: FAILED while timed: {said['failed']}")
                kids[impl].close()
                del times[impl]
    return times


def time_step(key: str, impl: str, step, seconds: float, first: bool) -> list[float]:
    """The timing rules of one round: `seconds` of repetitions (at least 3), after warm-up calls
    (fewer after the first round: they wake the threads and caches the idle wait cooled); the
    slow ones (SLOW) get half the time, at least 1 repetition, and warm up in the first only."""
    slow = (key, impl) in SLOW
    warmup = (1 if slow else 3) if first else (0 if slow else 2)
    return harness.time_boxed(step, seconds / 2 if slow else seconds,
                              min_reps=1 if slow else 3, warmup=warmup)


def impl_child(key: str, impl: str, npz: str, tiny: bool, requests: Iterable[str],
               reply: Callable[[dict], None]) -> None:
    """In a process of its own (`--child`): builds one implementation of one workload on the
    workload's fixed-seed problem, saves `runner.result()` to `npz` for the parent to check and
    replies {"pid", "ready"} (or "skipped" or "failed", and ends). Then, for each request
    ({"seconds", "first"}: one round), times `runner.step` and replies {"times": [...]}, until
    "quit" or the end of `requests`; an error while timed is replied ({"failed"}) and ends it."""
    mod = WORKLOADS[key]
    try:
        runner = mod.make(impl, mod.problem(**(mod.TINY if tiny else {})))
        np.savez(npz, **runner.result())
    except Skip as e:
        reply({"pid": os.getpid(), "skipped": str(e)})
        return
    except Exception as e:
        reply({"pid": os.getpid(), "failed": _short(e)})
        return
    reply({"pid": os.getpid(), "ready": True})
    for line in requests:
        if line.strip() == "quit":
            return
        try:
            request = json.loads(line)
            times = time_step(key, impl, runner.step, request["seconds"], request["first"])
        except Exception as e:
            reply({"failed": _short(e)})
            return
        reply({"times": times})


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
        r = row.ratio(peer)
        verdict = "met" if r >= need else "MISSED"
        pooled = row.seconds[peer] / row.seconds["cpu"]
        out.append(f"- {what}: {r:.2f}x ({verdict}; pooled medians {pooled:.2f}x)")

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
        "Medians of repeated runs. In each baseline's cell, (Nx) is how many times faster "
        "symgraph cpu is: the median over the rounds (below) of the baseline's time / symgraph "
        "cpu's time in the same round; for first steps, the ratio of the times. First steps "
        "run in a fresh process: model or graph construction, compilation and one training "
        "step, imports not counted; cold = empty kernel/compile caches, warm = a second "
        "process on the caches the first filled.",
        "",
        "Every implementation of a workload runs in a process of its own (none shares a "
        "process with another framework's threads or libraries), all of them alive at once: "
        "each is built and its results checked, then those that agree are timed side by side, "
        "in rounds (max(3, round(--budget)) of them): in each, every implementation in turn, in an "
        "order that changes from round to round, times its step for its share of the budget "
        f"after a {QUIET_S:g} s quiet gap, while the others wait idle: a slow spell of the "
        "machine (seconds long) weighs on a round of several implementations, not on one "
        "implementation's whole time. The table's times are medians of all repetitions of all "
        "rounds; the notes list each round's ratio to symgraph cpu, and the pooled one.",
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
                        help="seconds of timed repetitions per implementation and workload, "
                        "in max(3, round(budget)) rounds")
    parser.add_argument("--no-first-step", action="store_true")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny problems, no first steps: does the harness work?")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--first-step", nargs=2, metavar=("WORKLOAD", "IMPL"),
                        help=argparse.SUPPRESS)  # the child process of the first-step rows
    parser.add_argument("--child", nargs=3, metavar=("WORKLOAD", "IMPL", "NPZ"),
                        help=argparse.SUPPRESS)  # the child process of one table cell
    args = parser.parse_args(argv)
    if args.first_step:
        first_step_child(*args.first_step)
        return 0
    if args.child:
        replies = os.fdopen(os.dup(1), "w")  # stdout is the replies' alone: what the
        os.dup2(2, 1)  # frameworks print (from Python or C) goes to stderr
        impl_child(*args.child, args.tiny, sys.stdin,
                   lambda said: print(json.dumps(said), file=replies, flush=True))
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
