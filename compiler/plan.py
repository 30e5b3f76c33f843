"""The compiler's output: a Plan, the ordered steps that compute a set of fetches from feeds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compiler.program import Program
from symgraph.graph import Node


@dataclass(frozen=True)
class Plan:
    """What a device executes for one (fetches, feeds) signature.

    Attributes:
      program: the graph the steps belong to, with its outputs (one per fetch) and inputs (one
        placeholder per feed).
      steps: in order; each a Node (computed by the reference function of its op) or a compiled
        kernel (codegen_cpu.Kernel) that computes several nodes in one loop.
      free_after: for each step, the ids of values no later step needs (dropped after it).
      unfed: placeholders the steps need but no feed supplies (the run must fail, naming them).
    """

    program: Program
    steps: tuple[Any, ...]
    free_after: tuple[tuple[int, ...], ...]
    unfed: tuple[Node, ...]

    @property
    def kernels(self) -> list[Any]:
        return [s for s in self.steps if not isinstance(s, Node)]
