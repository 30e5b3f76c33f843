"""Every registry entry is complete, and every op with a NumPy function is in the op table."""

from __future__ import annotations

import re

import pytest
from op_cases import CASES, EXCLUDED, carries_gradient

import symgraph as sg  # noqa: F401 - registers every op
from symgraph.registry import NOT_DIFFERENTIABLE, REGISTRY, OpDef, OpKind

ENTRIES = sorted(REGISTRY.values(), key=lambda d: d.name)
NO_COMPUTATION = (OpKind.SOURCE, OpKind.CONTROL)  # may lack both numpy and effect


@pytest.mark.parametrize("opdef", ENTRIES, ids=[d.name for d in ENTRIES])
def test_entry_is_complete(opdef: OpDef) -> None:
    """Each stage finds what it needs: a type rule, a way to compute, a gradient verdict."""
    assert REGISTRY[opdef.name] is opdef
    assert re.fullmatch(r"[a-z][a-z0-9_]*", opdef.name), "op names are short lowercase strings"
    assert callable(opdef.infer)
    if opdef.kind not in NO_COMPUTATION:
        assert opdef.numpy is not None or opdef.effect is not None, "nothing computes it"
    if opdef.grad is None:
        assert opdef.kind is OpKind.STATE, "only state ops may lack a gradient verdict"
    else:
        assert callable(opdef.grad) or opdef.grad is NOT_DIFFERENTIABLE
    if opdef.kind is OpKind.ELEMENTWISE:
        assert opdef.scalar, "elementwise ops need a scalar template for codegen"
        if opdef.shape_inputs != (0,):  # fill_like reads no input's value, only a shape
            assert re.search(r"\{\d\}|\{\*\}", opdef.scalar), "the template must use its inputs"


def test_every_op_with_numpy_is_in_the_table() -> None:
    """A new op cannot land without forward and gradient cases in tests/op_cases.py."""
    covered = {c.op for c in CASES}
    missing = sorted(name for name, d in REGISTRY.items()
                     if d.numpy is not None and name not in covered and name not in EXCLUDED)
    assert not missing, f"registered ops missing from tests/op_cases.py: {missing}"


def test_exclusions_are_registered_and_not_tested_twice() -> None:
    covered = {c.op for c in CASES}
    assert set(EXCLUDED) <= set(REGISTRY), set(EXCLUDED) - set(REGISTRY)
    assert not set(EXCLUDED) & covered


def test_every_differentiable_op_is_gradient_checked() -> None:
    """Each op with a gradient rule has at least one case compared to central differences."""
    checked = {c.op for c in CASES if carries_gradient(c)}
    covered = {c.op for c in CASES}
    unchecked = sorted(name for name in covered if callable(REGISTRY[name].grad)
                       and name not in checked)
    assert not unchecked, f"differentiable ops without a gradient case: {unchecked}"


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
