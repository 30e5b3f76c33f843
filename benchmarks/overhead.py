"""The per-run Python overhead of W1's training step (issue 4, point 4): what a plain
`Session.run` costs beyond the work of its steps.

A plain run's wall time (median of many) minus the sum of its steps' own times (each step's
median over traced runs; assigns that a plain run folds into their update's step are left out,
as a plain run skips them): the executor's loop, the feed and fetch checks, the plan lookup.
Plain and traced runs take turns, so that a slow spell of the machine weighs on both alike
(measured apart on the AMD EPYC, the traced runs' work came out longer than the plain runs).

    python benchmarks/overhead.py          # a few seconds; prints the numbers
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import w1_mlp  # noqa: E402


def main(steps: int = 400) -> None:
    import symgraph as sg

    model = w1_mlp.SymgraphMLP(w1_mlp.problem(), "cpu")
    for _ in range(50):
        model.step()
    walls = []
    plan = model.sess.plan_for(model.train, model.feed)
    per_step: dict[int, list[float]] = {}
    for _ in range(steps):
        t0 = time.perf_counter()
        model.step()
        walls.append(time.perf_counter() - t0)
        metadata = sg.RunMetadata()
        model.sess.run(model.train, model.feed, run_metadata=metadata,
                       options=sg.RunOptions(trace_level=sg.RunOptions.FULL_TRACE))
        for s in metadata.step_stats:
            per_step.setdefault(s.index, []).append(s.duration_us)
    work_us = sum(statistics.median(v) for i, v in per_step.items() if not plan.folded[i])
    wall_us = statistics.median(walls) * 1e6
    overhead = wall_us - work_us
    print(f"W1 training step (batch 128), plain Session.run: {wall_us:.0f} us (median of "
          f"{steps}); its {sum(not f for f in plan.folded)} steps' own work: {work_us:.0f} us; "
          f"per-run overhead: {overhead:.0f} us ({100 * overhead / wall_us:.1f}% of the step)")


if __name__ == "__main__":
    main()
