"""`tf.app.flags` / `tf.flags` of TF1: command-line flags defined next to the code that reads
them. `FLAGS.name` parses `sys.argv` on first use (or `tf.app.run` does); flags nobody defined
are left for the script's own argument parser, as TF1's tolerant parser did."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from symgraph.compat.v1._names import unsupported

__all__ = ["DEFINE_bool", "DEFINE_boolean", "DEFINE_float", "DEFINE_integer", "DEFINE_string",
           "FLAGS"]

_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"0", "false", "f", "no", "n"}


def _to_bool(text: str) -> bool:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean (true/false)")


class _Flags:
    """The flag values, as attributes."""

    def __init__(self) -> None:
        object.__setattr__(self, "_defs", {})  # name -> (parse, default, help)
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "_parsed", False)

    def define(self, name: str, default: Any, help: str, parse: Callable[[str], Any]) -> None:  # noqa: A002
        if name in self._defs:
            raise ValueError(f"flag --{name} is defined twice")
        self._defs[name] = (parse, default, help)
        self._values[name] = default

    def parse(self, argv: list[str]) -> list[str]:
        """Sets the defined flags found in argv[1:]; returns argv without them."""
        rest = argv[:1]
        args = list(argv[1:])
        while args:
            arg = args.pop(0)
            if arg == "--":
                rest.extend(args)
                break
            name, eq, text = arg.lstrip("-").partition("=")
            if not arg.startswith("-") or not name:
                rest.append(arg)
                continue
            bool_name = name[2:] if name.startswith("no") and name[2:] in self._defs else None
            if name in self._defs:
                parse = self._defs[name][0]
                if parse is _to_bool and not eq:
                    self._values[name] = True
                    continue
                if not eq:
                    if not args:
                        raise ValueError(f"flag --{name} needs a value")
                    text = args.pop(0)
                try:
                    self._values[name] = parse(text)
                except ValueError as e:
                    raise ValueError(f"flag --{name}: {e}") from None
            elif bool_name is not None and self._defs[bool_name][0] is _to_bool and not eq:
                self._values[bool_name] = False
            else:
                rest.append(arg)
        object.__setattr__(self, "_parsed", True)
        return rest

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if not self._parsed:
            self.parse(sys.argv)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no flag --{name} is defined (tf.app.flags.DEFINE_...)") \
                from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._defs:
            raise AttributeError(f"no flag --{name} is defined")
        self._values[name] = value

    def __call__(self, argv: list[str], known_only: bool = True) -> list[str]:
        return self.parse(list(argv))


FLAGS = _Flags()


def DEFINE_string(name: str, default: str | None, help: str) -> None:  # noqa: A002, N802
    FLAGS.define(name, default, help, str)


def DEFINE_integer(name: str, default: int | None, help: str) -> None:  # noqa: A002, N802
    FLAGS.define(name, default, help, int)


def DEFINE_float(name: str, default: float | None, help: str) -> None:  # noqa: A002, N802
    FLAGS.define(name, default, help, float)


def DEFINE_boolean(name: str, default: bool | None, help: str) -> None:  # noqa: A002, N802
    FLAGS.define(name, default, help, _to_bool)


DEFINE_bool = DEFINE_boolean

__getattr__ = unsupported("tf.app.flags")
