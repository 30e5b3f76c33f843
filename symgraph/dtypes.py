"""Tensor element types, with TF1's names and TF1's rules for converting values between them."""

from __future__ import annotations

from typing import Any

import numpy as np


class DType:
    """An element type: a thin, comparable wrapper over a NumPy dtype with TF1's name."""

    __slots__ = ("name", "np")

    def __init__(self, name: str, np_dtype: Any) -> None:
        self.name = name
        self.np = np.dtype(np_dtype)

    @property
    def as_numpy_dtype(self) -> type:
        """The NumPy scalar type, as TF1 names it."""
        return self.np.type

    @property
    def is_floating(self) -> bool:
        return self.np.kind == "f"

    @property
    def is_integer(self) -> bool:
        return self.np.kind in "iu"

    @property
    def is_bool(self) -> bool:
        return self.np.kind == "b"

    @property
    def base_dtype(self) -> DType:
        return self

    def __repr__(self) -> str:
        return f"sg.{self.name}"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DType):
            return self.np == other.np
        try:
            return self.np == as_dtype(other).np
        except TypeError:
            return NotImplemented

    def __hash__(self) -> int:
        return hash(self.np)


float16 = DType("float16", np.float16)
float32 = DType("float32", np.float32)
float64 = DType("float64", np.float64)
int8 = DType("int8", np.int8)
int16 = DType("int16", np.int16)
int32 = DType("int32", np.int32)
int64 = DType("int64", np.int64)
uint8 = DType("uint8", np.uint8)
bool_ = DType("bool", np.bool_)

ALL = (float16, float32, float64, int8, int16, int32, int64, uint8, bool_)
_BY_NP = {d.np: d for d in ALL}
# TF1 also accepts these strings wherever a dtype goes ("float" is float32, "double" float64).
_ALIASES = {"float": float32, "double": float64, "half": float16, "int": int32, "long": int64}


def as_dtype(value: Any) -> DType:
    """Converts a DType, NumPy dtype, Python type or name string to a DType."""
    if isinstance(value, DType):
        return value
    if value is None:  # np.dtype(None) is float64: never pick a dtype silently
        raise TypeError("a dtype is required here, got None")
    if isinstance(value, str):
        if value in _ALIASES:
            return _ALIASES[value]
        for d in ALL:
            if d.name == value:
                return d
    if value is float:
        return float32
    if value is int:
        return int32
    if value is bool:
        return bool_
    try:
        npd = np.dtype(value)
    except TypeError:
        npd = None
    if npd is not None and npd in _BY_NP:
        return _BY_NP[npd]
    raise TypeError(f"cannot interpret {value!r} as a symgraph dtype; use one of "
                    + ", ".join(d.name for d in ALL))


def default_dtype_for(value: Any) -> DType:
    """The dtype TF1 gives a Python or NumPy value: floats float32, ints int32, bools bool.

    NumPy arrays and scalars keep their own dtype (float64 data stays float64), as in TF1.
    """
    if isinstance(value, (np.ndarray, np.generic)):
        return as_dtype(value.dtype)
    arr = np.asarray(value)
    if arr.dtype.kind == "b":
        return bool_
    if arr.dtype.kind in "iu":
        if arr.size and (arr.max() > np.iinfo(np.int32).max or arr.min() < np.iinfo(np.int32).min):
            return int64
        return int32
    if arr.dtype.kind == "f":
        return float32
    raise TypeError(f"cannot make a tensor from a value of type {type(value).__name__}: "
                    f"expected numbers, bools, nested lists of them, or a NumPy array")


def convert_array(value: Any, dtype: DType, what: str) -> np.ndarray:
    """Converts data to `dtype` under TF1's rules, where no value may change kind.

    Allowed: float data into any float type, int data into int types (if every value fits) and
    float types, bool into bool. Refused: floats into ints (truncation), bools into numbers,
    numbers into bools, and integers that overflow. `what` names the destination in errors.
    """
    try:
        arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    except ValueError as e:  # ragged nested lists
        raise ValueError(f"{what}: cannot make an array of this value: {e}") from None
    src = arr.dtype
    if src.kind not in "biuf":
        raise TypeError(f"{what}: cannot convert data of dtype {src} to {dtype.name}")
    if src == dtype.np:
        return arr
    kind_ok = (
        (dtype.is_floating and src.kind in "fiu")
        or (dtype.is_integer and src.kind in "iu")
        or (dtype.is_bool and src.kind == "b")
    )
    if not kind_ok:
        raise TypeError(f"{what}: cannot convert {src} data to {dtype.name} without changing "
                        f"values' kind (TF1 refuses this too); cast it explicitly first")
    if dtype.is_integer and arr.size:
        info = np.iinfo(dtype.np)
        lo, hi = arr.min(), arr.max()
        if lo < info.min or hi > info.max:
            raise TypeError(f"{what}: values in [{lo}, {hi}] overflow {dtype.name}")
    return arr.astype(dtype.np)
