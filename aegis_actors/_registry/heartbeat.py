"""`HeartbeatActor`: registers its instance in the registry and keeps the key alive.

The key `service-instances.{serviceName}.{instanceId}` is created with a
per-key TTL and rewritten every `interval` with a revision-checked write that
renews the TTL. If the instance dies, nobody rewrites it and NATS expires it
(watchers see the expiry). A key found gone (purged by hand, expired during a
pause) is created again. Failed writes are retried with exponential backoff
and jitter; after `unhealthy_after` failures in a row the instance reports
itself UNHEALTHY, and the first write that gets through says so, so callers
stay away for one interval after a flap. On a graceful stop the key is
deleted first, so callers move away at once.

In a sticky-active group the status is ACTIVE only for the leader whose
service serves requests, STANDBY for the others (UNHEALTHY wins over both),
and the record carries the leader's `leadershipRevision`. A `BeatNow` writes
the record at once (the leadership changed) and restarts the interval.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aegis_actors._actor import Actor
from aegis_actors._backoff import Backoff
from aegis_actors._buckets import instance_key
from aegis_actors._cell import Cell, Readable
from aegis_actors._connection import Connection
from aegis_actors._errors import (
    AegisError,
    KeyExistsError,
    RevisionConflictError,
    StoreUnavailableError,
)
from aegis_actors._instance import Instance
from aegis_actors._kv import KVBucket
from aegis_actors._models import utc_now
from aegis_actors._ref import ActorRef
from aegis_actors._registry.models import InstanceStatus, ServiceInstance
from aegis_actors._registry.store import registry_bucket_spec
from aegis_actors._telemetry import tracked


class HeartbeatSettings(BaseModel):
    """Registration of an instance in the registry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ttl: int = Field(
        30, ge=1, description="Seconds the key outlives the last heartbeat (whole seconds)."
    )
    interval: float = Field(10.0, gt=0, description="Seconds between heartbeats.")
    unhealthy_after: int = Field(
        3, ge=1, description="Failed heartbeats in a row after which the instance is UNHEALTHY."
    )
    retry_min: float = Field(
        0.1, ge=0, description="First wait before retrying a failed heartbeat (then doubles)."
    )
    health_timeout: float = Field(
        2.0, gt=0, description="Seconds the service's `health()` hook may take."
    )

    @model_validator(mode="after")
    def _interval_below_ttl(self) -> HeartbeatSettings:
        if self.interval >= self.ttl:
            raise ValueError(
                f"heartbeat interval ({self.interval:g} s) must be shorter than the key TTL "
                f"({self.ttl} s), or the key expires between heartbeats"
            )
        return self


class Standing(Protocol):
    """What the heartbeat reads of the instance's leadership (a `Leadership`)."""

    @property
    def active(self) -> bool: ...

    @property
    def revision(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class HealthQuery:
    """Ask the service actor (with `ask_priority`) whether it is healthy; answers a bool."""


@dataclass(frozen=True, slots=True)
class BeatNow:
    """Tell the heartbeat actor to write the record now: the status has changed."""


@dataclass(frozen=True, slots=True)
class _Beat:
    token: object


@dataclass(frozen=True, slots=True)
class GetRegistration:
    """Ask the heartbeat actor for its `Registration`."""


@dataclass(frozen=True, slots=True)
class Registration:
    registered: bool
    revision: int | None
    status: InstanceStatus
    failures: int


class HeartbeatActor(Actor):
    """Keeps one instance's registry key alive, and decides its status.

    It writes the instance's `status` cell and its own ref in `heartbeat`
    (so that siblings can tell it `BeatNow`); it reads the `leadership` the
    leadership actor writes, and `serving` and `service` that the service
    writes.
    """

    def __init__(
        self,
        instance: Instance,
        settings: HeartbeatSettings,
        *,
        connection: Connection,
        status: Cell[InstanceStatus],
        heartbeat: Cell[ActorRef | None],
        leadership: Readable[Standing | None],
        serving: Readable[bool],
        service: Readable[ActorRef | None],
    ) -> None:
        super().__init__()
        self.instance = instance
        self.settings = settings
        self.connection = connection
        self.status = status
        self.heartbeat = heartbeat
        self.leadership = leadership
        self.serving = serving
        self.service = service
        self.key = instance_key(instance.service_name, instance.instance_id)
        self._bucket: KVBucket | None = None
        self._revision: int | None = None
        self._failures = 0
        self.beats = 0
        """Heartbeats written (for `/metrics`)."""
        self.failed_beats = 0
        """Heartbeats the store did not take (for `/metrics`)."""
        self._degraded = False
        self._backoff = Backoff(base=settings.retry_min, cap=settings.interval)
        self._next: object | None = None

    async def on_start(self) -> None:
        self.heartbeat.set(self.actor_ref)
        tracked.HEARTBEATS[self.instance.instance_id] = self
        await self._beat()

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Beat):
            if message.token is self._next:  # not one overtaken by a BeatNow
                await self._beat()
            return None
        if isinstance(message, BeatNow):
            await self._beat()
            return None
        if isinstance(message, GetRegistration):
            return Registration(
                self._revision is not None, self._revision, self.status.value, self._failures
            )
        return await super().on_receive(message)

    async def _beat(self) -> None:
        status = await self._status()
        try:
            await self._write(status)
        except StoreUnavailableError as exc:
            # "No stream answered" is also what a deleted bucket looks like:
            # look the bucket up again (and create it) at the next attempt.
            self._bucket = None
            self._failures += 1
            self.failed_beats += 1
            delay = self._backoff.delay(self._failures - 1)
            self.actor_log.warning(
                "heartbeat failed", error=str(exc), failures=self._failures, retry_in=delay
            )
            if self._failures >= self.settings.unhealthy_after and not self._degraded:
                self._degraded = True
                self.status.set(InstanceStatus.UNHEALTHY)
                self.actor_log.error("heartbeats keep failing: instance is UNHEALTHY")
            self._schedule(delay)
            return
        self.beats += 1
        if self._failures:
            self.actor_log.info("heartbeat recovered", after_failures=self._failures)
        self._failures = 0
        self._schedule(self.settings.interval)

    def _schedule(self, delay: float) -> None:
        token = self._next = object()
        self.actor_timer(delay, _Beat(token))

    async def _status(self) -> InstanceStatus:
        healthy = await self._ask_health()
        if self._degraded and self._failures == 0:
            self._degraded = False  # the previous write told the registry; now recover
        status = self._leadership_status()
        if self._degraded or not healthy:
            status = InstanceStatus.UNHEALTHY
        if status is not self.status.value:
            self.actor_log.info("status changed", old=self.status.value, new=status)
            self.status.set(status)
        return status

    def _leadership_status(self) -> InstanceStatus:
        """STANDBY in a sticky-active group, unless the instance leads it and its service serves."""
        leadership = self.leadership.value
        if leadership is None or (leadership.active and self.serving.value):
            return InstanceStatus.ACTIVE
        return InstanceStatus.STANDBY

    async def _ask_health(self) -> bool:
        service = self.service.value
        if service is None:
            return False  # not serving (yet, or any more)
        try:
            return bool(
                await service.ask_priority(HealthQuery(), timeout=self.settings.health_timeout)
            )
        except (AegisError, TimeoutError) as exc:
            self.actor_log.warning("health check failed", error=repr(exc))
            return False

    def _record(self, status: InstanceStatus) -> bytes:
        instance, leadership = self.instance, self.leadership.value
        record = ServiceInstance(
            service_name=instance.service_name,
            instance_id=instance.instance_id,
            version=instance.version,
            status=status,
            sticky_active_group=instance.sticky_active_group,
            leadership_revision=(
                leadership.revision
                if leadership is not None and status is InstanceStatus.ACTIVE
                else None
            ),
            configuration=instance.bound_configuration,
            last_heartbeat=utc_now(),
            metadata={"host": socket.gethostname(), "pid": os.getpid(), **instance.metadata},
        )
        return record.model_dump_json(exclude_none=True).encode()

    async def _write(self, status: InstanceStatus) -> None:
        if self._bucket is None:
            self._bucket = await KVBucket.ensure(
                self.connection.jetstream(self.instance.kv_timeout),
                registry_bucket_spec(self.instance.buckets),
            )
        bucket, ttl, value = self._bucket, self.settings.ttl, self._record(status)
        if self._revision is not None:
            try:
                self._revision = await bucket.update(
                    self.key, value, revision=self._revision, ttl=ttl
                )
                return
            except RevisionConflictError:
                self.actor_log.warning("registration changed under us, registering again")
        try:
            self._revision = await bucket.create(self.key, value, ttl=ttl)
            self.actor_log.info("registered", key=self.key, ttl=ttl, status=status.value)
        except KeyExistsError:
            # Our own key from before a restart of this actor: the instance id is ours.
            current = await bucket.get_any(self.key)
            self._revision = await bucket.update(
                self.key, value, revision=current.revision if current else 0, ttl=ttl
            )

    async def on_stop(self) -> None:
        if tracked.HEARTBEATS.get(self.instance.instance_id) is self:
            del tracked.HEARTBEATS[self.instance.instance_id]
        if self.heartbeat.value is self.actor_ref:
            self.heartbeat.set(None)
        if self._revision is None or self._bucket is None:
            return
        try:
            with anyio.fail_after(self.instance.kv_timeout):
                await self._bucket.delete(self.key)
            self.actor_log.info("deregistered", key=self.key)
        except (StoreUnavailableError, TimeoutError) as exc:
            self.actor_log.warning("deregistration failed; the key will expire", error=repr(exc))
