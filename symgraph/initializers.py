"""Initializers (`sg.initializers`, TF1's `*_initializer`): factories of initial-value tensors.

Each class is configured once (`he_normal(seed=1)`) and called with `(shape, dtype=None,
partition_info=None)` to build a tensor in the default graph: a constant, or a random op that
draws new values in every run unless seeded. Fans follow TF1's `_compute_fans`: a dense kernel
(in, out) has fan_in=in, fan_out=out; a conv kernel HWIO has fan_in=H*W*I, fan_out=H*W*O.
"""

from __future__ import annotations

import math
from typing import Any

from symgraph import dtypes as _dt
from symgraph.graph import Tensor
from symgraph.ops import random as _random
from symgraph.ops.state import constant as _constant

# Standard deviation of a unit normal truncated to [-2, 2]: TF1 divides by it so that a
# truncated draw has the variance asked for.
_TRUNCATED_STDDEV = 0.87962566103423978


class Initializer:
    """Base: `init(shape, dtype)` returns a Tensor of that static shape and dtype."""

    dtype: _dt.DType = _dt.float32

    def __call__(self, shape: Any, dtype: Any = None, partition_info: Any = None) -> Tensor:
        raise NotImplementedError

    def _dtype(self, dtype: Any) -> _dt.DType:
        return _dt.as_dtype(self.dtype if dtype is None else dtype)

    def get_config(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "dtype"}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Zeros(Initializer):
    def __init__(self, dtype: Any = _dt.float32) -> None:
        self.dtype = _dt.as_dtype(dtype)

    def __call__(self, shape: Any, dtype: Any = None, partition_info: Any = None) -> Tensor:
        dtype = self._dtype(dtype)
        return _constant(False if dtype.is_bool else 0, dtype=dtype, shape=shape)


class Ones(Initializer):
    def __init__(self, dtype: Any = _dt.float32) -> None:
        self.dtype = _dt.as_dtype(dtype)

    def __call__(self, shape: Any, dtype: Any = None, partition_info: Any = None) -> Tensor:
        dtype = self._dtype(dtype)
        return _constant(True if dtype.is_bool else 1, dtype=dtype, shape=shape)


class Constant(Initializer):
    """A scalar fills the shape; a value with as many elements is reshaped to it."""

    def __init__(self, value: Any = 0, dtype: Any = _dt.float32,
                 verify_shape: bool = False) -> None:
        self.value = value
        self.dtype = _dt.as_dtype(dtype)

    def __call__(self, shape: Any, dtype: Any = None, partition_info: Any = None) -> Tensor:
        return _constant(self.value, dtype=self._dtype(dtype), shape=shape)


class RandomNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 1.0, seed: int | None = None,
                 dtype: Any = _dt.float32) -> None:
        self.mean, self.stddev, self.seed = mean, stddev, seed
        self.dtype = _dt.as_dtype(dtype)

    def __call__(self, shape: Any, dtype: Any = None, partition_info: Any = None) -> Tensor:
        return _random.random_normal(shape, self.mean, self.stddev, self._dtype(dtype), self.seed)


class TruncatedNormal(Initializer):
    """Normal values, those beyond 2 stddev redrawn; `stddev` is that of the untruncated normal."""

    def __init__(self, mean: float = 0.0, stddev: float = 1.0, seed: int | None = None,
                 dtype: Any = _dt.float32) -> None:
        self.mean, self.stddev, self.seed = mean, stddev, seed
        self.dtype = _dt.as_dtype(dtype)

    def __call__(self, shape: Any, dtype: Any = None, partition_info: Any = None) -> Tensor:
        return _random.truncated_normal(shape, self.mean, self.stddev, self._dtype(dtype),
                                        self.seed)


class RandomUniform(Initializer):
    """Uniform in [minval, maxval); maxval None means 1 for floats (required for ints)."""

    def __init__(self, minval: float = 0, maxval: float | None = None, seed: int | None = None,
                 dtype: Any = _dt.float32) -> None:
        self.minval, self.maxval, self.seed = minval, maxval, seed
        self.dtype = _dt.as_dtype(dtype)

    def __call__(self, shape: Any, dtype: Any = None, partition_info: Any = None) -> Tensor:
        return _random.random_uniform(shape, self.minval, self.maxval, self._dtype(dtype),
                                      self.seed)


def compute_fans(shape: Any) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shape: dense (in, out), conv (..., in, out), as TF1."""
    dims = [int(d) for d in shape]
    if not dims:
        return 1, 1
    if len(dims) == 1:
        return dims[0], dims[0]
    receptive_field = math.prod(dims[:-2])
    return dims[-2] * receptive_field, dims[-1] * receptive_field


class VarianceScaling(Initializer):
    """Values with variance scale / n, n = fan_in, fan_out or their mean (`mode`).

    distribution: "truncated_normal" (and "normal", as in TF1) draws a normal truncated at 2
    stddev, with the stddev raised so that the truncated values have the asked variance;
    "untruncated_normal" a plain normal; "uniform" U(-limit, limit) with limit = sqrt(3 scale / n).
    """

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("normal", "truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal", seed: int | None = None,
                 dtype: Any = _dt.float32) -> None:
        if scale <= 0.0:
            raise ValueError(f"variance_scaling needs a positive scale, got {scale}")
        if mode not in self._MODES:
            raise ValueError(f"variance_scaling mode must be one of {self._MODES}, got {mode!r}")
        if distribution not in self._DISTRIBUTIONS:
            raise ValueError(f"variance_scaling distribution must be one of "
                             f"{self._DISTRIBUTIONS}, got {distribution!r}")
        self.scale, self.mode, self.distribution, self.seed = scale, mode, distribution, seed
        self.dtype = _dt.as_dtype(dtype)

    def __call__(self, shape: Any, dtype: Any = None, partition_info: Any = None) -> Tensor:
        dtype = self._dtype(dtype)
        if not dtype.is_floating:
            raise TypeError(f"{type(self).__name__} makes floating values, not {dtype.name}")
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution in ("normal", "truncated_normal"):
            stddev = math.sqrt(variance) / _TRUNCATED_STDDEV
            return _random.truncated_normal(shape, 0.0, stddev, dtype, self.seed)
        if self.distribution == "untruncated_normal":
            return _random.random_normal(shape, 0.0, math.sqrt(variance), dtype, self.seed)
        limit = math.sqrt(3.0 * variance)
        return _random.random_uniform(shape, -limit, limit, dtype, self.seed)


class GlorotUniform(VarianceScaling):
    """Xavier uniform: variance 2 / (fan_in + fan_out)."""

    def __init__(self, seed: int | None = None, dtype: Any = _dt.float32) -> None:
        super().__init__(1.0, "fan_avg", "uniform", seed, dtype)


class GlorotNormal(VarianceScaling):
    """Xavier normal (truncated): variance 2 / (fan_in + fan_out)."""

    def __init__(self, seed: int | None = None, dtype: Any = _dt.float32) -> None:
        super().__init__(1.0, "fan_avg", "truncated_normal", seed, dtype)


def he_normal(seed: int | None = None) -> VarianceScaling:
    """He normal (truncated): variance 2 / fan_in."""
    return VarianceScaling(2.0, "fan_in", "truncated_normal", seed)


def he_uniform(seed: int | None = None) -> VarianceScaling:
    """He uniform: variance 2 / fan_in."""
    return VarianceScaling(2.0, "fan_in", "uniform", seed)


def lecun_normal(seed: int | None = None) -> VarianceScaling:
    """LeCun normal (truncated): variance 1 / fan_in."""
    return VarianceScaling(1.0, "fan_in", "truncated_normal", seed)


def lecun_uniform(seed: int | None = None) -> VarianceScaling:
    """LeCun uniform: variance 1 / fan_in."""
    return VarianceScaling(1.0, "fan_in", "uniform", seed)


def get(identifier: Any) -> Any:
    """An initializer from an instance, a class, a callable or a name ("he_normal")."""
    if identifier is None or isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, str):
        factory = _BY_NAME.get(identifier)
        if factory is None:
            raise ValueError(f"unknown initializer {identifier!r}; known: {', '.join(_BY_NAME)}")
        return factory()
    if callable(identifier):
        return identifier
    raise TypeError(f"cannot interpret {identifier!r} as an initializer")


# TF1's lowercase names (`sg.initializers.zeros()`) and `*_initializer` aliases.
zeros = Zeros
ones = Ones
constant = Constant
random_normal = RandomNormal
truncated_normal = TruncatedNormal
random_uniform = RandomUniform
variance_scaling = VarianceScaling
glorot_uniform = GlorotUniform
glorot_normal = GlorotNormal
xavier_uniform = GlorotUniform
xavier_normal = GlorotNormal

zeros_initializer = Zeros
ones_initializer = Ones
constant_initializer = Constant
random_normal_initializer = RandomNormal
truncated_normal_initializer = TruncatedNormal
random_uniform_initializer = RandomUniform
variance_scaling_initializer = VarianceScaling
glorot_uniform_initializer = GlorotUniform
glorot_normal_initializer = GlorotNormal

_BY_NAME = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_normal": RandomNormal,
    "truncated_normal": TruncatedNormal, "random_uniform": RandomUniform,
    "variance_scaling": VarianceScaling, "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal, "he_normal": he_normal, "he_uniform": he_uniform,
    "lecun_normal": lecun_normal, "lecun_uniform": lecun_uniform,
}
