"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest


@pytest.fixture
def epilogue_blocks(monkeypatch) -> list[tuple]:
    """The shapes of the blocks that epilogue loops run on (Kernel.function_for with
    part=True, compiler.epilogue), in the order they start, recorded while the test runs."""
    from compiler import codegen_cpu

    blocks: list[tuple] = []
    function_for = codegen_cpu.Kernel.function_for

    def spy(self, args, part=False):
        if part:
            blocks.append(args[self.size_slot].shape)
        return function_for(self, args, part)

    monkeypatch.setattr(codegen_cpu.Kernel, "function_for", spy)
    return blocks
