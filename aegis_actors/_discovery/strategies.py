"""Picking one instance of a service: `round_robin`, `random`, `sticky`, `least_outstanding`.

A picker belongs to one caller and one target service, and keeps what its
strategy needs (a counter, the sticky choice). `pick` takes the ids that may
be called (already filtered by health) and the ids this call already tried,
and costs O(1) for round robin, random and a healthy sticky choice, O(n) for
least outstanding. Pure code: no NATS, no clock.
"""

from __future__ import annotations

import random
from collections.abc import Container, Mapping
from typing import Protocol

from aegis_actors._discovery.settings import CallStrategy


class Picker(Protocol):
    def pick(self, ids: tuple[str, ...], tried: Container[str] | None) -> str | None:
        """One of `ids` not in `tried`, or None if there is none."""
        ...


def _first_turn() -> int:
    # A random start: many short-lived callers (CLI calls, fresh clients)
    # would otherwise all begin with the first instance.
    return random.randrange(1 << 30)


class RoundRobin:
    """Each instance in turn, from a random start (`start`: the first index, for tests)."""

    def __init__(self, start: int | None = None) -> None:
        self._turn = (_first_turn() if start is None else start) - 1

    def pick(self, ids: tuple[str, ...], tried: Container[str] | None) -> str | None:
        count = len(ids)
        if not count:
            return None
        if not tried:
            self._turn += 1
            return ids[self._turn % count]
        for _ in range(count):
            self._turn += 1
            candidate = ids[self._turn % count]
            if candidate not in tried:
                return candidate
        return None


class RandomPick:
    """Uniformly at random (`rng` for tests that need a seed)."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def pick(self, ids: tuple[str, ...], tried: Container[str] | None) -> str | None:
        if not tried:
            return self._rng.choice(ids) if ids else None
        left = [i for i in ids if i not in tried]
        return self._rng.choice(left) if left else None


class Sticky:
    """The same instance as long as it can be called; then the next one, in turn."""

    def __init__(self) -> None:
        self.current: str | None = None
        self._next = RoundRobin()

    def pick(self, ids: tuple[str, ...], tried: Container[str] | None) -> str | None:
        current = self.current
        if current is not None and current in ids and not (tried and current in tried):
            return current
        self.current = self._next.pick(ids, tried)
        return self.current


class LeastOutstanding:
    """The instance with the fewest calls in flight from this caller; ties in turn."""

    def __init__(self, outstanding: Mapping[str, int], start: int | None = None) -> None:
        self._outstanding = outstanding
        self._turn = (_first_turn() if start is None else start) - 1

    def pick(self, ids: tuple[str, ...], tried: Container[str] | None) -> str | None:
        count = len(ids)
        if not count:
            return None
        self._turn += 1
        outstanding = self._outstanding
        best: str | None = None
        fewest = 0
        for n in range(count):
            candidate = ids[(self._turn + n) % count]
            if tried and candidate in tried:
                continue
            load = outstanding.get(candidate, 0)
            if best is None or load < fewest:
                best, fewest = candidate, load
                if not load:
                    break  # nothing beats an idle instance
        return best


def picker(strategy: CallStrategy, outstanding: Mapping[str, int]) -> Picker:
    """A fresh picker for `strategy` (`outstanding`: calls in flight per instance id)."""
    if strategy is CallStrategy.ROUND_ROBIN:
        return RoundRobin()
    if strategy is CallStrategy.RANDOM:
        return RandomPick()
    if strategy is CallStrategy.STICKY:
        return Sticky()
    if strategy is CallStrategy.LEAST_OUTSTANDING:
        return LeastOutstanding(outstanding)
    raise ValueError(
        f"unknown call strategy {strategy!r}; use one of {[s.value for s in CallStrategy]}"
    )
