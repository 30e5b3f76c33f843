"""The compiler's output: a Plan, the ordered steps that compute a set of fetches from feeds."""

from __future__ import annotations

from dataclasses import dataclass

from symgraph.graph import Graph, Node


@dataclass(frozen=True)
class Plan:
    """What a device executes for one (fetches, feeds) signature.

    Attributes:
      graph: the graph the nodes belong to.
      steps: the nodes to compute, in an order where inputs and control inputs come first.
      fetches: the nodes whose values (or effects) were asked for, in the caller's order.
      feeds: the nodes whose values the caller supplies instead of computing them.
      free_after: for each step, the ids of values no later step needs (dropped after it).
      unfed: placeholders the steps need but no feed supplies (the run must fail, naming them).
    """

    graph: Graph
    steps: tuple[Node, ...]
    fetches: tuple[Node, ...]
    feeds: tuple[Node, ...]
    free_after: tuple[tuple[int, ...], ...]
    unfed: tuple[Node, ...]
