"""`FleetActor`: the monitor's live view of the fleet, pushed to every open page.

It subscribes to two KV watches (the registry's instance keys and the service
definitions) and to the connection's changes, keeps the last known value of
each, and turns every change into a server-sent event, encoded once and
handed to each page's bounded stream. A page that cannot keep up (its stream
is full) is dropped: its browser reconnects and starts again from a fresh
snapshot, so a slow page never slows the view, nor grows its memory.

Events (`event:` name, `data:` one line of JSON):

| event | data |
| --- | --- |
| `snapshot` | everything: instances, definitions, stats, connection, write access, server time |
| `instance` | one registry record (new or changed), with its KV `revision` |
| `gone` | `{instanceId, reason}`: its key was deleted or expired |
| `definition` | `{definition, revision}` |
| `undefined` | `{serviceName}`: its definition was deleted |
| `stats` | `{at, instances: {id: [requests, errors, processing ns]}}` |
| `status` | `{connected, synced}`: NATS reachable, registry view complete |
| `access` | `{resources: {services, apps, configs}, known}`: what may be written |

While at least one page follows, `$SRV.STATS` is sampled every
`stats_interval` by the `ProbeActor` (one scatter-gather request); with no
page open the monitor sends nothing at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from pydantic import ValidationError
from pydantic_core import to_json

from aegis_actors._actor import Actor
from aegis_actors._buckets import instance_key, parse_instance_key
from aegis_actors._connection import ConnectionChanged, WatchConnection
from aegis_actors._denials import Violation, denials_of
from aegis_actors._mgmt.models import ServiceDefinition
from aegis_actors._registry.models import ServiceInstance
from aegis_actors._watch import KeyChanged, KeyRemoved, Removal, WatchState, WatchSynced
from aegis_actors._web.access import ASSUMED, WriteAccess, resource_of
from aegis_actors._web.context import WebContext
from aegis_actors._web.probe import AccessChecked, CheckAccess, FleetSampled, SampleFleet

#: Events a page may have waiting before it is dropped (and reconnects to a snapshot).
FOLLOWER_BUFFER: Final = 4096
#: Tells the browser how soon to reconnect after losing the stream (ms).
RETRY_MS: Final = 1000


def frame(event: str, data: Any) -> bytes:
    """One server-sent event: its name and one line of JSON."""
    return b"event: " + event.encode() + b"\ndata: " + to_json(data, by_alias=True) + b"\n\n"


# -- what the fleet actor answers ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Follow:
    """Ask for a `Follower`: the snapshot now, then every change."""


@dataclass(frozen=True, slots=True)
class Follower:
    snapshot: bytes
    """The `snapshot` event (with the reconnect delay)."""
    frames: MemoryObjectReceiveStream[bytes]
    """The events after it; ends when the page is dropped or the monitor stops."""


@dataclass(frozen=True, slots=True)
class CountInstances:
    """How many instances of `service` the registry holds (answers an int)."""

    service: str


@dataclass(frozen=True, slots=True)
class Denied:
    """The server refused a publish to `subject` (a permissions violation)."""

    subject: str


@dataclass(frozen=True, slots=True)
class _SampleTick:
    pass


class FleetActor(Actor):
    """Keeps the fleet's view and pushes it to the pages that follow it."""

    def __init__(self, ctx: WebContext) -> None:
        super().__init__()
        self.ctx = ctx
        self._instances: dict[str, dict[str, Any]] = {}
        self._definitions: dict[str, dict[str, Any]] = {}
        self._stats: dict[str, Any] = {"at": None, "instances": {}}
        self._synced = {ctx.buckets.registry: False, ctx.buckets.definitions: False}
        self._connected = True
        self._access: WriteAccess = ASSUMED
        self._followers: list[MemoryObjectSendStream[bytes]] = []
        self._sampling = False
        self._tick_due = False
        self._stop_listening: Callable[[], None] | None = None

    async def on_start(self) -> None:
        self.ctx.fleet = self.actor_ref
        denials = denials_of(self.ctx.client) if self.ctx.client is not None else None
        if denials is not None:  # a write refused despite the check: read-only from now on
            ref = self.actor_ref

            def refused(violation: Violation) -> bool:
                if violation.operation == "publish":
                    ref.tell_nowait(Denied(violation.subject))
                return False  # the request's own caller is told by its guard

            self._stop_listening = denials.listen(refused)
        await self.ctx.registry.subscribe(self.actor_ref)
        await self.ctx.definitions.subscribe(self.actor_ref)
        if self.ctx.connection_actor is not None:
            await self.ctx.connection_actor.tell(WatchConnection(self.actor_ref))
        await self._check_access()

    async def on_stop(self) -> None:
        if self._stop_listening is not None:
            self._stop_listening()
        followers, self._followers = self._followers, []
        for stream in followers:
            stream.close()

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, KeyChanged):
            self._changed(message)
        elif isinstance(message, KeyRemoved):
            self._removed(message)
        elif isinstance(message, WatchState):
            self._replace(message)
        elif isinstance(message, WatchSynced):
            if message.synced:
                self._drop_ghosts(message.bucket, message.keys)
            self._set_synced(message.bucket, message.synced)
        elif isinstance(message, ConnectionChanged):
            self._connected = message.connected
            self._push("status", self._status())
            if message.connected:
                await self._check_access()
        elif isinstance(message, Follow):
            return self._follow()
        elif isinstance(message, CountInstances):
            return sum(1 for r in self._instances.values() if r["serviceName"] == message.service)
        elif isinstance(message, _SampleTick):
            self._tick_due = False
            await self._sample()
        elif isinstance(message, FleetSampled):
            self._sampled(message)
        elif isinstance(message, AccessChecked):
            self._set_access(message.access)
        elif isinstance(message, Denied):
            resource = resource_of(self.ctx.subjects, message.subject)
            if resource is not None and self._access.resources.get(resource, True):
                self._set_access(self._access.denied(resource))
        else:
            return await super().on_receive(message)
        return None

    # -- the watches --------------------------------------------------------------------

    def _replace(self, state: WatchState) -> None:
        if state.bucket == self.ctx.buckets.registry:
            self._instances = {}
        else:
            self._definitions = {}
        for entry in state.entries:
            self._store(entry)
        self._synced[state.bucket] = state.synced
        if self._followers:  # a restarted watch: pages start again from the new view
            self._push("snapshot", self._snapshot())

    def _changed(self, entry: KeyChanged) -> None:
        event = self._store(entry)
        if event is not None:
            self._push(*event)

    def _store(self, entry: KeyChanged) -> tuple[str, Any] | None:
        if entry.bucket == self.ctx.buckets.registry:
            return self._store_instance(entry)
        try:
            definition = ServiceDefinition.model_validate_json(entry.value)
        except ValidationError:
            self.actor_log.debug("unreadable definition skipped", key=entry.key)
            return None
        if definition.service_name != entry.key:
            return None
        item = {"definition": definition.model_dump(), "revision": entry.revision}
        self._definitions[entry.key] = item
        return "definition", item

    def _store_instance(self, entry: KeyChanged) -> tuple[str, Any] | None:
        parsed = parse_instance_key(entry.key)
        if parsed is None:
            return None
        try:
            instance = ServiceInstance.model_validate_json(entry.value)
        except ValidationError:
            self.actor_log.debug("unreadable registry record skipped", key=entry.key)
            return None
        if (instance.service_name, instance.instance_id) != parsed:
            return None
        record = {**instance.model_dump(exclude_none=True), "revision": entry.revision}
        self._instances[instance.instance_id] = record
        return "instance", record

    def _removed(self, removed: KeyRemoved) -> None:
        if removed.bucket == self.ctx.buckets.registry:
            parsed = parse_instance_key(removed.key)
            if parsed is None or self._instances.pop(parsed[1], None) is None:
                return
            self._stats["instances"].pop(parsed[1], None)
            self._push("gone", {"instanceId": parsed[1], "reason": removed.reason.value})
        elif self._definitions.pop(removed.key, None) is not None:
            self._push("undefined", {"serviceName": removed.key})

    def _drop_ghosts(self, bucket: str, live: frozenset[str]) -> None:
        """Forget what a full read no longer has (a restarted watch knows nothing to remove)."""
        if bucket == self.ctx.buckets.registry:
            for record in list(self._instances.values()):
                key = instance_key(record["serviceName"], record["instanceId"])
                if key not in live:
                    self._removed(KeyRemoved(bucket, key, 0, Removal.VANISHED))
        else:
            for name in list(self._definitions):
                if name not in live:
                    self._removed(KeyRemoved(bucket, name, 0, Removal.VANISHED))

    def _set_synced(self, bucket: str, synced: bool) -> None:
        if self._synced.get(bucket) != synced:
            self._synced[bucket] = synced
            self._push("status", self._status())

    def _status(self) -> dict[str, bool]:
        # The registry alone: the definitions bucket may not exist yet, and a
        # viewer may not create it (its watch retries until the bucket appears).
        return {"connected": self._connected, "synced": self._synced[self.ctx.buckets.registry]}

    # -- pages --------------------------------------------------------------------------

    def _snapshot(self) -> dict[str, Any]:
        return {
            "now": time.time() * 1000,
            "namespace": self.ctx.subjects.namespace,
            "status": self._status(),
            "access": self._access.to_json(),
            "instances": list(self._instances.values()),
            "definitions": list(self._definitions.values()),
            "stats": self._stats,
        }

    def _follow(self) -> Follower:
        send, receive = anyio.create_memory_object_stream[bytes](FOLLOWER_BUFFER)
        self._followers.append(send)
        snapshot = f"retry: {RETRY_MS}\n".encode() + frame("snapshot", self._snapshot())
        if not self._sampling and not self._tick_due:
            self._tick_due = True
            self.actor_ref.tell_nowait(_SampleTick())
        return Follower(snapshot, receive)

    def _push(self, event: str, data: Any) -> None:
        if not self._followers:
            return
        encoded = frame(event, data)
        kept = []
        for stream in self._followers:
            try:
                stream.send_nowait(encoded)
            except anyio.WouldBlock:
                self.actor_log.info("page dropped: it fell behind; it will reconnect")
                stream.close()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                stream.close()  # the page went away
            else:
                kept.append(stream)
        self._followers = kept

    # -- samples and access -------------------------------------------------------------

    async def _sample(self) -> None:
        self._prune()
        if not self._followers or self._sampling or self.ctx.probe is None:
            return
        self._sampling = True
        await self.ctx.probe.tell(SampleFleet(len(self._instances), self.actor_ref))

    def _prune(self) -> None:
        """Forget pages that went away (their streams are closed at the other end)."""
        kept = []
        for stream in self._followers:
            if stream.statistics().open_receive_streams:
                kept.append(stream)
            else:
                stream.close()
        self._followers = kept

    def _sampled(self, sample: FleetSampled) -> None:
        self._sampling = False
        if not sample.failed:
            known = {k: v for k, v in sample.totals.items() if k in self._instances}
            self._stats = {"at": sample.at * 1000, "instances": known}
            self._push("stats", self._stats)
        if self._followers and not self._tick_due:
            self._tick_due = True
            self.actor_timer(self.ctx.stats_interval, _SampleTick())

    async def _check_access(self) -> None:
        if self.ctx.probe is not None:
            await self.ctx.probe.tell(CheckAccess(self.actor_ref))

    def _set_access(self, access: WriteAccess) -> None:
        if access != self._access:
            self._access = access
            self._push("access", access.to_json())
