"""Fetch structures: any nesting of lists, tuples, dicts and namedtuples of fetchable things."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def flatten(structure: Any, is_leaf: Callable[[Any], bool]) -> tuple[list, Callable[[list], Any]]:
    """The leaves of `structure` in order, and a function that rebuilds it from new leaves."""
    leaves: list = []

    def walk(s: Any) -> Callable[[Any], Any]:
        if is_leaf(s):
            i = len(leaves)
            leaves.append(s)
            return lambda vals: vals[i]
        if isinstance(s, dict):
            builders = {k: walk(v) for k, v in s.items()}
            return lambda vals: type(s)((k, b(vals)) for k, b in builders.items())
        if isinstance(s, tuple) and hasattr(s, "_fields"):  # namedtuple
            builders = [walk(v) for v in s]
            return lambda vals: type(s)(*(b(vals) for b in builders))
        if isinstance(s, (list, tuple)):
            builders = [walk(v) for v in s]
            return lambda vals: type(s)(b(vals) for b in builders)
        raise TypeError(f"cannot fetch a {type(s).__name__}: fetches are tensors, operations, "
                        "their names, or lists, tuples, dicts and namedtuples of them")

    build = walk(structure)
    return leaves, build
