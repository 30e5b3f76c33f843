"""`tf.app` of TF1: `run(main, argv)` parses the flags defined with `tf.app.flags` and exits
with what `main(argv)` returns."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

from symgraph.compat.v1 import flags
from symgraph.compat.v1._names import unsupported

__all__ = ["flags", "run"]


def run(main: Callable[[list[str]], Any] | None = None,
        argv: list[str] | None = None) -> NoReturn:
    """Calls `main` (default: the `main` of the script being run) with `argv` (default
    sys.argv) minus the flags tf.app.flags defines, then `sys.exit`s with its result."""
    if main is None:
        main = getattr(sys.modules["__main__"], "main", None)
        if main is None:
            raise ValueError("tf.app.run() found no main(): pass main=, or define main(argv)")
    rest = flags.FLAGS.parse(list(sys.argv if argv is None else argv))
    sys.exit(main(rest))


__getattr__ = unsupported("tf.app")
