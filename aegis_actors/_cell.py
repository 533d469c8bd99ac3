"""`Cell`: one fact of a running instance, with exactly one writer.

Sibling actors of an instance tell each other what changed by messages. A
fact that must be current at every read (the leadership a handler checks
before a write, the status `$SRV.INFO` reports, the ref of a sibling to
tell) lives in a cell instead. The tree that wires the siblings makes each
cell and names its writer; the writer gets it as a `Cell`, every reader as a
`Readable`, so mypy refuses a write from a reader. One event loop runs every
actor, so a read never sees half a write. See docs/design.md ("one writer
per fact").
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Readable(Protocol[T_co]):
    """A cell as its readers hold it."""

    @property
    def value(self) -> T_co: ...


class Cell(Generic[T]):
    """A value with one named writer; `set` is for that writer only."""

    __slots__ = ("_value", "writer")

    def __init__(self, value: T, *, writer: str) -> None:
        self._value = value
        self.writer = writer
        """Who sets it (an actor's role in the tree): the answer to "who changed this?"."""

    def __repr__(self) -> str:
        return f"Cell({self._value!r}, writer={self.writer!r})"

    @property
    def value(self) -> T:
        return self._value

    def set(self, value: T) -> None:
        self._value = value
