"""`LeadershipActor`: takes, renews and releases the leadership key of a sticky-active group.

The key `service-leadership.{serviceName}.{group}` (registry bucket, per-key
TTL) names the ACTIVE instance of the group. Every instance of the group runs
this actor:

- It *takes* the key with a create-if-absent write (with the TTL): at start,
  and whenever its watch (a `KVWatchActor` on that one key) says the key is
  gone: deleted by a graceful stop, expired after a crash, purged by hand.
  Of racing standbys exactly one wins (the write checks the last revision);
  the others stay STANDBY. Standbys never poll.
- The winner is ACTIVE. The revision of its take is the fencing token
  (`Leadership.revision`, `ServiceActor.leadership`): every later leader's is
  larger. It *renews* the key every `interval` with a revision-checked write
  that carries the TTL again.
- It *steps down* to STANDBY when a renewal finds the key written by someone
  else (a revision conflict) or gone, when its watch shows either, and when it
  could not renew for so long that the key might expire: the lease. A write
  sent at monotonic time `t` keeps the key until at least `t + ttl` (the
  server counts the TTL from when it stores the write, which is later), so
  only after that can another instance take it. The actor steps down at
  `t + ttl - margin`, whatever the store says or does not say, and every KV
  wait of the active instance is cut short at that moment, so nothing can
  keep it ACTIVE past it. Two instances are never ACTIVE at the same
  revision: each take is a new revision, and the previous holder's lease has
  run out (or its key was removed) before a take can succeed.
- On a graceful stop it *releases* the key (a revision-checked delete), after
  the service has drained its calls (the service stops first), so a standby
  takes over at once, and never while the old active still works.

Every change is written at once to the `leadership` cell, whose one writer
this actor is (what `ServiceActor.leadership` reads, so a handler checking
it before a write sees the truth), and told to the service as a
`LeadershipChanged` through the system lane of its mailbox. A step-down also
asks the heartbeat to write the STANDBY status now; a step-up is written by
the heartbeat once the service has subscribed to its request subjects (the
service asks for that beat).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import anyio
from pydantic import ValidationError

from aegis_actors._actor import Actor
from aegis_actors._backoff import Backoff
from aegis_actors._buckets import leadership_key
from aegis_actors._cell import Cell, Readable
from aegis_actors._connection import Connection
from aegis_actors._errors import (
    BucketNotFoundError,
    KeyExistsError,
    RevisionConflictError,
    StoreUnavailableError,
)
from aegis_actors._instance import Instance
from aegis_actors._kv import Entry, KVBucket
from aegis_actors._leadership.models import (
    Leadership,
    LeadershipChanged,
    LeadershipRecord,
    LeadershipSettings,
)
from aegis_actors._models import utc_now
from aegis_actors._ref import ActorRef
from aegis_actors._registry.heartbeat import BeatNow
from aegis_actors._registry.store import registry_bucket_spec
from aegis_actors._watch import KeyChanged, KeyRemoved, WatchState, WatchSynced, WatchTopic


@dataclass(frozen=True, slots=True)
class _Renew:
    token: object


@dataclass(frozen=True, slots=True)
class _Expire:
    token: object


@dataclass(frozen=True, slots=True)
class _Retry:
    token: object


@dataclass(slots=True)
class _Lease:
    """The key as this instance holds it."""

    revision: int
    """Of the take: the fencing token."""
    current: int
    """The key's last revision, written by us (renewals raise it)."""
    valid_until: float
    """`time.monotonic()` after which the key may have expired: step down before."""
    value: bytes


class LeadershipActor(Actor):
    """Keeps its instance ACTIVE or STANDBY in one sticky-active group."""

    def __init__(
        self,
        instance: Instance,
        group: str,
        settings: LeadershipSettings,
        topic: WatchTopic,
        *,
        connection: Connection,
        leadership: Cell[Leadership | None],
        service: Readable[ActorRef | None],
        heartbeat: Readable[ActorRef | None],
    ) -> None:
        super().__init__()
        self.instance = instance
        self.group = group
        self.settings = settings
        self.topic = topic
        self.connection = connection
        self.leadership = leadership
        self.service = service
        self.heartbeat = heartbeat
        self.key = leadership_key(instance.service_name, group)
        self._bucket: KVBucket | None = None
        self._lease: _Lease | None = None
        self._renew_token: object | None = None
        self._expire_token: object | None = None
        self._retry_token: object | None = None
        self._failures = 0
        self._backoff = Backoff(base=0.1, cap=settings.interval)

    # -- lifecycle ----------------------------------------------------------------------

    async def on_start(self) -> None:
        self.leadership.set(Leadership(self.group, active=False))
        # Subscribe before the first take: a removal after a failed take is
        # then either in the WatchState or told afterwards, never missed.
        await self.topic.subscribe(self.actor_ref)
        await self._take("start")

    async def on_stop(self) -> None:
        self._retry_token = None
        lease = self._lease
        if lease is None:
            return
        self._step_down("stopping")
        assert self._bucket is not None  # we took the key through it
        try:
            with anyio.fail_after(self.instance.kv_timeout):
                await self._bucket.delete(self.key, revision=lease.current)
            self.actor_log.info("leadership released", group=self.group, key=self.key)
        except RevisionConflictError:
            self.actor_log.info("leadership already taken by another instance", group=self.group)
        except (StoreUnavailableError, TimeoutError) as exc:
            self.actor_log.warning(
                "leadership release failed; the key will expire",
                group=self.group,
                ttl=self.settings.ttl,
                error=repr(exc),
            )

    # -- messages -----------------------------------------------------------------------

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Renew):
            if message.token is self._renew_token:
                await self._renew()
        elif isinstance(message, _Expire):
            await self._expire(message.token)
        elif isinstance(message, _Retry):
            if message.token is self._retry_token:
                await self._take("retry")
        elif isinstance(message, KeyChanged):
            await self._key_changed(message)
        elif isinstance(message, KeyRemoved):
            await self._key_removed(message)
        elif isinstance(message, WatchState):
            for entry in message.entries:
                await self._key_changed(entry)
            if message.synced and not any(e.key == self.key for e in message.entries):
                await self._key_absent()
        elif isinstance(message, WatchSynced):
            if message.synced and self.key not in message.keys:
                await self._key_absent()
        else:
            return await super().on_receive(message)
        return None

    # -- what the watch tells -----------------------------------------------------------

    async def _key_changed(self, entry: KeyChanged) -> None:
        if entry.key != self.key:
            return
        lease = self._lease
        if lease is None:
            if self._names_us(entry.value):
                # Written by an earlier incarnation of this instance: nobody
                # else holds it, and a revision-checked write makes it ours.
                await self._take("our key from before")
            return
        if entry.revision <= lease.current:
            return  # our own write, or older
        if self._names_us(entry.value):
            # Our renewal got through although its answer did not reach us.
            lease.current = entry.revision
            return
        self._step_down("the key was written by another instance", holder=self._holder(entry))

    async def _key_removed(self, removed: KeyRemoved) -> None:
        if removed.key != self.key:
            return
        lease = self._lease
        reason = removed.reason.value.lower()
        if lease is not None:
            if not removed.revision:
                # Missing from a full read: we cannot order that against our
                # take, but a revision-checked renewal can.
                await self._renew()
                return
            if removed.revision <= lease.current:
                return  # a removal from before our take, told late
            self._step_down(f"the key was removed ({reason})")
        await self._take(f"key {reason}")

    async def _key_absent(self) -> None:
        """A full read of the watch did not find the key."""
        if self._lease is None:
            await self._take("key absent")
        else:
            # The read may predate our take: a revision-checked renewal tells.
            await self._renew()

    # -- taking -------------------------------------------------------------------------

    async def _take(self, reason: str) -> None:
        """Try to become ACTIVE; stay STANDBY if the key is held by another instance."""
        if self._lease is not None:
            return
        self._retry_token = None
        value = self._record()
        try:
            bucket = await self._open()
            sent = time.monotonic()
            try:
                revision = await bucket.create(self.key, value, ttl=self.settings.ttl)
            except KeyExistsError:
                current = await bucket.get(self.key)
                if current is None or not self._names_us(current.value):
                    self._failures = 0
                    return  # held by another: the watch tells when it goes
                sent = time.monotonic()
                try:
                    revision = await bucket.update(
                        self.key, value, revision=current.revision, ttl=self.settings.ttl
                    )
                except RevisionConflictError:
                    return
        except (StoreUnavailableError, BucketNotFoundError) as exc:
            self._bucket = None  # deleted, maybe: open (and so create) it again
            self._failures += 1
            delay = self._backoff.delay(self._failures - 1)
            self.actor_log.warning(
                "cannot take leadership: store unavailable",
                group=self.group,
                reason=reason,
                error=str(exc),
                failures=self._failures,
                retry_in=delay,
            )
            token = self._retry_token = object()
            self.actor_timer(delay, _Retry(token))
            return
        self._failures = 0
        self._lease = _Lease(revision, revision, self._valid_until(sent), value)
        self.leadership.set(Leadership(self.group, active=True, revision=revision))
        self.actor_log.info(
            "leadership taken: instance is ACTIVE",
            group=self.group,
            revision=revision,
            reason=reason,
        )
        self._schedule_renewal(self.settings.interval)
        self._schedule_expiry()
        self._tell_service()

    # -- keeping ------------------------------------------------------------------------

    async def _renew(self) -> None:
        lease = self._lease
        if lease is None:
            return
        bucket = self._bucket
        assert bucket is not None  # we took the key through it
        self._renew_token = None
        sent = time.monotonic()
        left = lease.valid_until - sent
        if left <= 0:
            await self._lapse()
            return
        revision: int | None = None
        current: Entry | None = None
        try:
            # Never wait past the lease: a stuck write must not keep us ACTIVE.
            with anyio.fail_after(min(self.instance.kv_timeout, left)):
                try:
                    revision = await bucket.update(
                        self.key, lease.value, revision=lease.current, ttl=self.settings.ttl
                    )
                except RevisionConflictError:
                    current = await bucket.get(self.key)
        except BucketNotFoundError:
            current = None  # the bucket was deleted, and our key with it
        except (StoreUnavailableError, TimeoutError) as exc:
            self._failures += 1
            left = lease.valid_until - time.monotonic()
            delay = max(0.0, min(self._backoff.delay(self._failures - 1), left))
            self.actor_log.warning(
                "leadership renewal failed",
                group=self.group,
                error=repr(exc),
                failures=self._failures,
                lease_left=round(left, 3),
                retry_in=round(delay, 3),
            )
            self._schedule_renewal(delay)
            return
        if revision is None:
            await self._conflict(lease, current)
            return
        if self._failures:
            self.actor_log.info("leadership renewal recovered", after_failures=self._failures)
        self._failures = 0
        lease.current = revision
        lease.valid_until = self._valid_until(sent)
        self._schedule_renewal(self.settings.interval)
        self._schedule_expiry()

    async def _conflict(self, lease: _Lease, current: Entry | None) -> None:
        """A renewal found the key at another revision than our last write."""
        if current is not None and self._names_us(current.value):
            # Ours: an earlier renewal got through although its answer did not
            # reach us (nobody else writes our instance id). Write again from there.
            lease.current = current.revision
            self._schedule_renewal(0)
            return
        self._step_down("the key was taken or removed", holder=self._holder(current))
        if current is None:
            await self._take("key gone")

    async def _expire(self, token: object) -> None:
        lease = self._lease
        if lease is None or token is not self._expire_token:
            return
        if time.monotonic() >= lease.valid_until:
            await self._lapse()
        else:
            self._schedule_expiry()  # the timer fired a hair early (clock resolution)

    async def _lapse(self) -> None:
        lease = self._lease
        assert lease is not None
        self._step_down(
            "could not renew the key in time: it may expire",
            ttl=self.settings.ttl,
            margin=self.settings.margin,
        )
        # If nobody else took it meanwhile, the key is still ours to take back.
        await self._take("after a lapse")

    def _step_down(self, reason: str, **details: Any) -> None:
        lease, self._lease = self._lease, None
        self._renew_token = self._expire_token = None
        if lease is None:
            return
        self.leadership.set(Leadership(self.group, active=False))
        log = self.actor_log.info if reason == "stopping" else self.actor_log.warning
        log(
            "leadership lost: instance is STANDBY",
            group=self.group,
            revision=lease.revision,
            reason=reason,
            **details,
        )
        self._tell_service()
        heartbeat = self.heartbeat.value
        if heartbeat is not None:
            heartbeat.send_system(BeatNow())  # say STANDBY now, not at the next beat

    # -- helpers ------------------------------------------------------------------------

    def _valid_until(self, sent: float) -> float:
        return sent + self.settings.ttl - self.settings.margin

    def _schedule_renewal(self, delay: float) -> None:
        token = self._renew_token = object()
        self.actor_timer(delay, _Renew(token))

    def _schedule_expiry(self) -> None:
        lease = self._lease
        assert lease is not None
        token = self._expire_token = object()
        self.actor_timer(max(0.0, lease.valid_until - time.monotonic()), _Expire(token))

    def _tell_service(self) -> None:
        service = self.service.value
        if service is not None:
            # The system lane: ahead of queued requests, never refused, in order.
            leadership = self.leadership.value
            assert leadership is not None  # set in on_start
            service.send_system(LeadershipChanged(leadership))

    async def _open(self) -> KVBucket:
        if self._bucket is None:
            js = self.connection.jetstream(self.instance.kv_timeout)
            self._bucket = await KVBucket.ensure(js, registry_bucket_spec(self.instance.buckets))
        return self._bucket

    def _record(self) -> bytes:
        record = LeadershipRecord(
            service_name=self.instance.service_name,
            sticky_active_group=self.group,
            instance_id=self.instance.instance_id,
            active_since=utc_now(),
        )
        return record.model_dump_json().encode()

    def _names_us(self, value: bytes) -> bool:
        return self._holder_of(value) == self.instance.instance_id

    def _holder(self, entry: KeyChanged | Entry | None) -> str | None:
        return None if entry is None else self._holder_of(entry.value)

    @staticmethod
    def _holder_of(value: bytes) -> str | None:
        try:
            return LeadershipRecord.model_validate_json(value).instance_id
        except ValidationError:
            return None
