"""Static shapes: dimensions known at graph-build time, with None for the ones that are not."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

Dim = int | None


class TensorShape:
    """A static shape: a tuple of dims (int or None), or None when even the rank is unknown.

    Compares equal to a list or tuple of the same dims, so `x.shape == (None, 784)` reads as in TF1.
    """

    __slots__ = ("dims",)

    def __init__(self, dims: Any = None) -> None:
        if isinstance(dims, TensorShape):
            dims = dims.dims
        elif dims is not None:
            if isinstance(dims, int):
                dims = (dims,)
            dims = tuple(_as_dim(d) for d in dims)
        self.dims: tuple[Dim, ...] | None = dims

    @property
    def rank(self) -> int | None:
        return None if self.dims is None else len(self.dims)

    ndims = rank

    def is_fully_defined(self) -> bool:
        return self.dims is not None and all(d is not None for d in self.dims)

    def as_list(self) -> list[Dim]:
        if self.dims is None:
            raise ValueError("as_list() is not defined on a shape of unknown rank")
        return list(self.dims)

    def num_elements(self) -> int | None:
        if not self.is_fully_defined():
            return None
        n = 1
        for d in self.dims:
            n *= d
        return n

    def is_compatible_with(self, other: Any) -> bool:
        """True when some concrete shape fits both (None matches any dim)."""
        other = TensorShape(other)
        if self.dims is None or other.dims is None:
            return True
        if len(self.dims) != len(other.dims):
            return False
        return all(a is None or b is None or a == b for a, b in zip(self.dims, other.dims))

    def __len__(self) -> int:
        if self.dims is None:
            raise ValueError("len() of a shape of unknown rank")
        return len(self.dims)

    def __iter__(self) -> Iterator[Dim]:
        if self.dims is None:
            raise ValueError("cannot iterate over a shape of unknown rank")
        return iter(self.dims)

    def __getitem__(self, i: Any) -> Any:
        if self.dims is None:
            return None if isinstance(i, int) else TensorShape(None)
        if isinstance(i, slice):
            return TensorShape(self.dims[i])
        return self.dims[i]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TensorShape):
            return self.dims == other.dims
        if isinstance(other, (list, tuple)):
            return self.dims is not None and list(self.dims) == list(other)
        if other is None:
            return self.dims is None
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.dims)

    def __repr__(self) -> str:
        if self.dims is None:
            return "<unknown>"
        inner = ", ".join("None" if d is None else str(d) for d in self.dims)
        return f"({inner}{',' if len(self.dims) == 1 else ''})"


def _as_dim(d: Any) -> Dim:
    if d is None:
        return None
    if hasattr(d, "__index__"):
        d = int(d)
        if d == -1:  # TF1 spells unknown dims -1 in some APIs
            return None
        if d < 0:
            raise ValueError(f"dimension {d} is negative")
        return d
    raise TypeError(f"a dimension must be an int or None, not {type(d).__name__}")


def broadcast_dims(a: Dim, b: Dim) -> Dim | bool:
    """One broadcast dim of a pair, or False when they can never broadcast."""
    if a == 1:
        return b
    if b == 1:
        return a
    if a is None:
        return b if b is not None else None
    if b is None or a == b:
        return a
    return False


def broadcast_shapes(shapes: Sequence[TensorShape]) -> TensorShape | None:
    """The NumPy broadcast of static shapes, or None when they cannot broadcast."""
    if any(s.dims is None for s in shapes):
        return TensorShape(None)
    rank = max((len(s.dims) for s in shapes), default=0)
    out: list[Dim] = [1] * rank
    for s in shapes:
        padded = (1,) * (rank - len(s.dims)) + s.dims
        for i, d in enumerate(padded):
            r = broadcast_dims(out[i], d)
            if r is False:
                return None
            out[i] = r
    return TensorShape(out)


def normalize_axis(axis: int, rank: int, what: str = "axis") -> int:
    """An axis in [-rank, rank) made non-negative, or ValueError."""
    if not -rank <= axis < rank:
        raise ValueError(f"{what} {axis} is out of range for rank {rank}")
    return axis % rank


def normalize_axes(axis: int | Iterable[int] | None, rank: int) -> tuple[int, ...]:
    """Reduction axes as a sorted tuple of distinct non-negative ints (None: all axes)."""
    if axis is None:
        return tuple(range(rank))
    if isinstance(axis, int) or hasattr(axis, "__index__"):
        axis = [int(axis)]
    out = sorted({normalize_axis(int(a), rank) for a in axis})
    return tuple(out)
