"""What a TF1 name that symgraph does not offer does: raise an error that names it.

Each compat module ends with `__getattr__ = unsupported("tf.nn")`, so `tf.nn.ctc_loss` fails at
the line that uses it, with the full TF1 name, instead of a bare AttributeError or, worse, a
look-alike that computes something else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

README_SECTION = "the README section 'TensorFlow 1 compatibility'"


class UnsupportedError(AttributeError):
    """A TF1 name or argument that symgraph.compat.v1 does not map (an AttributeError, so
    `hasattr(tf, name)` and `getattr(tf, name, default)` keep working)."""


def unsupported(prefix: str) -> Callable[[str], Any]:
    """A module `__getattr__` that refuses every name it is asked for, naming `prefix.name`."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):  # import machinery probes (__path__, __file__...): plain
            raise AttributeError(name)
        raise UnsupportedError(f"{prefix}.{name} is not supported by symgraph.compat.v1 (no "
                               f"symgraph equivalent yet); see {README_SECTION} for what is")

    return __getattr__


def refuse_argument(function: str, argument: str, value: Any) -> None:
    """Raises for a TF1 argument whose non-default value symgraph cannot honour."""
    raise UnsupportedError(f"{function}({argument}={value!r}) is not supported by "
                           f"symgraph.compat.v1; see {README_SECTION}")
