"""What a `KVWatchActor` tells its subscribers and answers, and the `WatchTopic` that joins them.

- `KeyChanged` once per new revision of a live key;
- `KeyRemoved` when a key is deleted, purged or expires (its TTL ran out);
- `WatchSynced(synced=True, keys=...)` after every full read, naming every
  live key: anything else the subscriber holds is a ghost it may drop;
  `WatchSynced(synced=False)` when the watch broke or the connection dropped:
  what the subscriber holds may be stale until the next synced message.

A subscriber's first message is a `WatchState` (every live key: replace what
you hold), then the changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from aegis_actors._ref import ActorRef


class Removal(StrEnum):
    """Why a key left the view."""

    DELETED = "DELETED"
    PURGED = "PURGED"
    EXPIRED = "EXPIRED"
    """Its TTL ran out (nobody rewrote it in time)."""
    VANISHED = "VANISHED"
    """Absent from a full read, tombstone and all (removed during a long outage)."""


# -- what subscribers receive ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyChanged:
    """A key has a new value."""

    bucket: str
    key: str
    value: bytes
    revision: int
    written_at: float
    """Unix time at which the server stored this revision."""


@dataclass(frozen=True, slots=True)
class KeyRemoved:
    """A key is gone."""

    bucket: str
    key: str
    revision: int
    """Revision of the tombstone (0 for `VANISHED`)."""
    reason: Removal


@dataclass(frozen=True, slots=True)
class WatchSynced:
    """The view is complete (`synced`) or may be stale from now on (not `synced`)."""

    bucket: str
    synced: bool
    keys: frozenset[str]
    """Every live key, when `synced`; empty otherwise."""


# -- what the actor answers -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Add `ref` to the subscribers; it is told the current `WatchState` first."""

    ref: ActorRef


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    ref: ActorRef


@dataclass(frozen=True, slots=True)
class WatchState:
    """A subscriber's first message: every live key (replace what you hold)."""

    bucket: str
    entries: tuple[KeyChanged, ...]
    synced: bool


@dataclass(frozen=True, slots=True)
class GetWatchStatistics:
    """Ask a `KVWatchActor` for its `WatchStatistics`."""


@dataclass(frozen=True, slots=True)
class WatchStatistics:
    """How a watch is doing: its state, its resyncs and its lag."""

    bucket: str
    keys: str
    synced: bool
    live_keys: int
    updates: int
    """Entries received after the replays."""
    resyncs: int
    """Full reads after the first one (reconnects, gaps, silent watches)."""
    consumer: str | None
    last_lag: float | None
    """Seconds from the server storing the last entry to the actor handling it."""
    max_lag: float | None
    pending: int
    """Entries the server still held for the watch at the last delivery."""
    subscribers: int


class WatchTopic:
    """Connects a `KVWatchActor` and its subscribers, across restarts of either."""

    def __init__(self) -> None:
        self.source: ActorRef | None = None
        """The watch actor, once it has started."""
        self.subscribers: list[ActorRef] = []

    async def subscribe(self, ref: ActorRef) -> None:
        """Have `ref` told a `WatchState`, then every change.

        Raises:
            RuntimeError: no watch actor has started on this topic.
        """
        if self.source is None:
            raise RuntimeError("no KVWatchActor has started on this topic yet")
        await self.source.tell(Subscribe(ref))
