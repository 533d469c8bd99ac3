"""What callers read on the hot path: immutable views of services, swapped whole.

The `DiscoveryCacheActor` is the only writer: on every change it builds a new
`ServiceView` and a new mapping, and swaps the mapping in. Readers take
`cache.snapshot` and index it, a dict access, without waiting in any mailbox
(the hot path must not pay for the actor model: docs/design.md). Only a miss
(a service not seen yet, an expired entry) asks the actor to read the registry.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import anyio

from aegis_actors._discovery.settings import DiscoveryMode
from aegis_actors._errors import (
    ActorDeadError,
    AskTimeoutError,
    ErrorCode,
    MailboxFullError,
    ServiceError,
    StoreUnavailableError,
)
from aegis_actors._ref import ActorRef
from aegis_actors._registry.models import ServiceInstance

NEVER: Final = math.inf


@dataclass(frozen=True, slots=True)
class ServiceView:
    """The instances of one service, as callers see them."""

    service: str
    instances: tuple[ServiceInstance, ...]
    """Every registered instance, sorted by id."""
    ids: tuple[str, ...]
    """The ones to call: not UNHEALTHY, not evicted, and in a sticky-active service
    only the ACTIVE leader of each group (the one with the largest leadership revision)."""
    members: frozenset[str]
    """`ids` as a set."""
    expires_at: float
    """`cache.clock()` after which the view is read again (never, while a watch keeps it)."""
    evicted: frozenset[str] = frozenset()
    """Instances left out after 'no responders', until they write their record again."""
    idempotent: frozenset[str] = frozenset()
    """Methods that every registered instance declares idempotent: retried after a timeout."""

    def describe(self) -> str:
        """Why `ids` is what it is, for error messages: `3 registered: 1 UNHEALTHY, ...`."""
        if not self.instances:
            return "none registered"
        counts: dict[str, int] = {}
        for instance in self.instances:
            counts[instance.status.value] = counts.get(instance.status.value, 0) + 1
        parts = [f"{n} {status}" for status, n in sorted(counts.items())]
        if self.evicted:
            parts.append(f"{len(self.evicted)} evicted after failed calls")
        return f"{len(self.instances)} registered: " + ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Load:
    """Ask the cache actor for a view of `service`, reading the registry if needed."""

    service: str
    force: bool = False


@dataclass(frozen=True, slots=True)
class Evict:
    """Tell the cache actor that `instance_id` did not answer; skip it until it writes again."""

    service: str
    instance_id: str


@dataclass(frozen=True, slots=True)
class DiscoveryStatistics:
    """Counters of a discovery cache: hits, misses, loads, evictions (docs/guides/calls.md)."""

    mode: DiscoveryMode
    synced: bool
    """False while the watch is broken or not started: views may be stale."""
    services: int
    instances: int
    hits: int
    """Lookups answered from a current view."""
    misses: int
    """Lookups that had to ask the cache actor (unknown service, expired or empty view)."""
    stale_serves: int
    """Calls that used a view known to be stale (watch broken, or registry unreachable)."""
    evictions: int
    """Instances dropped after 'no responders'."""
    loads: int
    """Reads of the registry."""
    load_failures: int


class DiscoveryCache:
    """The instance map: read it freely; only its `DiscoveryCacheActor` writes it."""

    def __init__(self, mode: DiscoveryMode, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.mode = mode
        self.clock = clock
        """Where expiry times come from (tests pass a fake one to skip time)."""
        self.snapshot: Mapping[str, ServiceView] = {}
        self.synced = mode is not DiscoveryMode.WATCH
        self.ready = mode is not DiscoveryMode.WATCH
        """True once the first state from the watch is in (at once without a watch)."""
        self.actor: ActorRef | None = None
        """The cache actor, once started (it sets this)."""
        self.hits = 0
        self.misses = 0
        self.stale_serves = 0
        self.evictions = 0
        self.loads = 0
        self.load_failures = 0
        self._changed: anyio.Event | None = None

    # -- readers ------------------------------------------------------------------------

    def lookup(self, service: str) -> ServiceView | None:
        """A view of `service` with instances to call, or None (a miss: `fetch` it)."""
        view = self.snapshot.get(service)
        if view is not None and view.ids and view.expires_at > self.clock():
            if self.synced:
                self.hits += 1
            else:
                self.stale_serves += 1
            return view
        self.misses += 1
        return None

    async def fetch(self, service: str, *, timeout: float, force: bool = False) -> ServiceView:
        """Have the cache actor read the registry for `service` (if its view is not current).

        With the registry unreachable, a view with instances is used anyway (a
        stale serve): a store outage does not fail calls that a cached answer serves.

        Raises:
            ServiceError: SERVICE_UNAVAILABLE (registry unreachable and nothing
                cached, or discovery stopped) or DEADLINE_EXCEEDED.
        """
        actor = self.actor
        if actor is None:
            raise ServiceError.of(ErrorCode.SERVICE_UNAVAILABLE, "discovery has not started yet")
        try:
            view: ServiceView = await actor.ask(Load(service, force), timeout=timeout)
        except StoreUnavailableError as exc:
            stale = self.snapshot.get(service)
            if stale is not None and stale.ids:
                self.stale_serves += 1
                return stale
            raise ServiceError.of(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"cannot reach the service registry and no instance of {service!r} is "
                f"cached: {exc}",
                service=service,
            ) from exc
        except AskTimeoutError:
            raise ServiceError.of(
                ErrorCode.DEADLINE_EXCEEDED,
                f"the deadline passed while looking up the instances of {service!r}",
                service=service,
            ) from None
        except ActorDeadError:
            raise ServiceError.of(
                ErrorCode.SERVICE_UNAVAILABLE, "discovery has stopped", service=service
            ) from None
        return view

    def evict(self, service: str, instance_id: str) -> None:
        """Ask the cache actor to skip `instance_id` (without waiting)."""
        actor = self.actor
        if actor is None:
            return
        # A full mailbox drops the eviction: this call skips the instance
        # anyway, and the next failed call tells again.
        with contextlib.suppress(MailboxFullError):
            actor.tell_nowait(Evict(service, instance_id))

    async def wait_for(
        self, predicate: Callable[[Mapping[str, ServiceView]], bool], *, timeout: float
    ) -> None:
        """Wait until `predicate(snapshot)` holds (checked at every swap).

        Raises:
            TimeoutError: it did not hold within `timeout` seconds.
        """
        with anyio.fail_after(timeout):
            while not predicate(self.snapshot):
                if self._changed is None:
                    self._changed = anyio.Event()
                await self._changed.wait()

    def statistics(self) -> DiscoveryStatistics:
        snapshot = self.snapshot
        return DiscoveryStatistics(
            mode=self.mode,
            synced=self.synced,
            services=sum(1 for v in snapshot.values() if v.instances),
            instances=sum(len(v.instances) for v in snapshot.values()),
            hits=self.hits,
            misses=self.misses,
            stale_serves=self.stale_serves,
            evictions=self.evictions,
            loads=self.loads,
            load_failures=self.load_failures,
        )

    # -- the writer (the cache actor) -----------------------------------------------------

    def swap(self, snapshot: Mapping[str, ServiceView]) -> None:
        """Publish a new snapshot (the cache actor only; never mutate one published)."""
        self.snapshot = snapshot
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()
