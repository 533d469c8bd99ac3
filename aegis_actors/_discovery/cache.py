"""`DiscoveryCacheActor`: owns the instance map and publishes it as immutable views.

In `watch` mode it subscribes to a `KVWatchActor` on the registry, so every
registration, heartbeat, graceful stop (a delete) and expiry (a marker) is
applied within a watch delivery; the views never expire while the watch is
synced, and are served as stale (counted) while it is not. In `ttl` mode it
reads a service's instances from the registry when its view is older than
`cache_ttl`. In both modes a miss reads the registry, an empty answer is
remembered for `negative_ttl`, and an unreachable registry is not asked again
for `negative_ttl` (calls then use what is cached, or fail at once).

An instance that does not answer ("no responders") is evicted: left out of its
service's view until it writes a newer record (its next heartbeat, if it is
alive after all), or its key goes away.

In a sticky-active service only the ACTIVE instance of each group is called:
STANDBY ones are left out, and so is an ACTIVE record whose
`leadershipRevision` is below another of its group (a dead leader's record
outlives it until its registry key expires; the newer leader is the one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from aegis_actors._actor import Actor, Failure
from aegis_actors._buckets import Buckets, instance_key, instance_keys, parse_instance_key
from aegis_actors._discovery.settings import DiscoveryMode, DiscoverySettings
from aegis_actors._discovery.snapshot import NEVER, DiscoveryCache, Evict, Load, ServiceView
from aegis_actors._errors import StoreUnavailableError
from aegis_actors._kv import KVBucket
from aegis_actors._registry.models import IDEMPOTENT_METHODS, InstanceStatus, ServiceInstance
from aegis_actors._registry.store import registry_bucket_spec
from aegis_actors._transport import NatsClient
from aegis_actors._watch import KeyChanged, KeyRemoved, WatchState, WatchSynced, WatchTopic


@dataclass(frozen=True, slots=True)
class _Record:
    instance: ServiceInstance
    revision: int


class DiscoveryCacheActor(Actor):
    """The only writer of a `DiscoveryCache`."""

    def __init__(
        self,
        cache: DiscoveryCache,
        client: NatsClient,
        buckets: Buckets,
        settings: DiscoverySettings,
        *,
        topic: WatchTopic | None = None,
        kv_timeout: float = 2.0,
    ) -> None:
        super().__init__()
        if settings.mode is DiscoveryMode.WATCH and topic is None:
            raise ValueError("watch mode needs the WatchTopic of a KVWatchActor on the registry")
        if settings.mode is DiscoveryMode.OFF:
            raise ValueError("discovery mode 'off' runs no cache actor")
        self.cache = cache
        self.client = client
        self.buckets = buckets
        self.settings = settings
        self.topic = topic
        self.kv_timeout = kv_timeout
        self._records: dict[str, dict[str, _Record]] = {}
        self._evicted: dict[str, int] = {}
        self._bucket: KVBucket | None = None
        self._failed_at: float | None = None

    async def on_start(self) -> None:
        self.cache.actor = self.actor_ref
        if self.topic is not None:
            await self.topic.subscribe(self.actor_ref)

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, Load):
            return await self._load(message.service, message.force)
        if isinstance(message, KeyChanged):
            self._changed(message)
        elif isinstance(message, KeyRemoved):
            self._removed(message.key)
        elif isinstance(message, WatchSynced):
            self._synced(message)
        elif isinstance(message, Evict):
            self._evict(message.service, message.instance_id)
        elif isinstance(message, WatchState):
            self._replace(message)
        else:
            return await super().on_receive(message)
        return None

    # -- from the watch -------------------------------------------------------------------

    def _replace(self, state: WatchState) -> None:
        self._records = {}
        for entry in state.entries:
            self._put(entry)
        self.cache.synced = state.synced
        self.cache.ready = True
        self._publish_all()

    def _changed(self, entry: KeyChanged) -> None:
        service = self._put(entry)
        if service is not None:
            self._publish(service)

    def _put(self, entry: KeyChanged) -> str | None:
        parsed = parse_instance_key(entry.key)
        if parsed is None:
            return None
        service, instance_id = parsed
        instance = _parse(entry.value, service, instance_id)
        if instance is None:
            self.actor_log.debug("unreadable registry record skipped", key=entry.key)
            return None
        records = self._records.setdefault(service, {})
        current = records.get(instance_id)
        if current is not None and current.revision >= entry.revision:
            return None
        records[instance_id] = _Record(instance, entry.revision)
        if self._evicted.get(instance_id, entry.revision) < entry.revision:
            del self._evicted[instance_id]  # it wrote again: alive after all
        return service

    def _removed(self, key: str) -> None:
        parsed = parse_instance_key(key)
        if parsed is None:
            return
        service, instance_id = parsed
        self._evicted.pop(instance_id, None)
        records = self._records.get(service)
        if records is not None and records.pop(instance_id, None) is not None:
            if not records:
                del self._records[service]
            self._publish(service)

    def _synced(self, message: WatchSynced) -> None:
        self.cache.synced = message.synced
        if not message.synced:
            return
        ghosts = []
        for service, records in self._records.items():
            for instance_id in records:
                if instance_key(service, instance_id) not in message.keys:
                    ghosts.append(instance_key(service, instance_id))
        for key in ghosts:
            self._removed(key)

    # -- from callers -------------------------------------------------------------------

    def _evict(self, service: str, instance_id: str) -> None:
        record = self._records.get(service, {}).get(instance_id)
        if record is None or self._evicted.get(instance_id, -1) >= record.revision:
            return
        self._evicted[instance_id] = record.revision
        self.cache.evictions += 1
        self.actor_log.info("instance evicted after no responders", instance_id=instance_id)
        self._publish(service)

    async def _load(self, service: str, force: bool) -> ServiceView | Failure:
        now = self.cache.clock()
        view = self.cache.snapshot.get(service)
        if not force and view is not None and self._current(view, now):
            return view  # another caller's miss loaded it meanwhile
        if self._failed_at is not None and now - self._failed_at < self.settings.negative_ttl:
            return Failure(StoreUnavailableError("the service registry did not answer just now"))
        try:
            entries = await self._read(service)
        except StoreUnavailableError as exc:
            self._bucket = None  # deleted, maybe: open (and create) it again next time
            self._failed_at = self.cache.clock()
            self.cache.load_failures += 1
            self.actor_log.warning("registry read failed", service=service, error=str(exc))
            return Failure(exc)
        self._failed_at = None
        self.cache.loads += 1
        records = {}
        for revision, instance in entries:
            records[instance.instance_id] = _Record(instance, revision)
        if self.settings.mode is DiscoveryMode.TTL:
            for gone in self._records.get(service, {}).keys() - records.keys():
                self._evicted.pop(gone, None)
            self._records[service] = records  # the read is the whole truth
        else:
            # The watch tells removals; a read can only be ahead of it.
            known = self._records.setdefault(service, {})
            for instance_id, record in records.items():
                current = known.get(instance_id)
                if current is None or current.revision < record.revision:
                    known[instance_id] = record
        if not self._records.get(service):
            self._records.pop(service, None)
        return self._publish(service, loaded=True)

    def _current(self, view: ServiceView, now: float) -> bool:
        if view.expires_at <= now:
            return False
        return self.settings.mode is DiscoveryMode.TTL or self.cache.synced or not view.ids

    async def _read(self, service: str) -> list[tuple[int, ServiceInstance]]:
        if self._bucket is None:
            js = self.client.jetstream(timeout=self.kv_timeout)
            self._bucket = await KVBucket.ensure(js, registry_bucket_spec(self.buckets))
        found = []
        for entry in await self._bucket.entries(instance_keys(service)):
            parsed = parse_instance_key(entry.key)
            if parsed is None:
                continue
            instance = _parse(entry.value, *parsed)
            if instance is not None:
                found.append((entry.revision, instance))
        return found

    # -- publishing -----------------------------------------------------------------------

    def _publish(self, service: str, *, loaded: bool = False) -> ServiceView:
        snapshot = dict(self.cache.snapshot)
        view = self._view(service, snapshot.get(service), loaded)
        if view.instances or loaded:
            snapshot[service] = view
        else:
            snapshot.pop(service, None)
        self.cache.swap(snapshot)
        return view

    def _publish_all(self) -> None:
        old = self.cache.snapshot
        snapshot = {}
        for service in self._records:
            snapshot[service] = self._view(service, old.get(service), loaded=False)
        self.cache.swap(snapshot)

    def _view(self, service: str, old: ServiceView | None, loaded: bool) -> ServiceView:
        records = self._records.get(service, {})
        instances = tuple(sorted((r.instance for r in records.values()), key=_instance_id))
        sticky = any(i.sticky_active_group for i in instances)
        evicted = frozenset(i for i, r in records.items() if self._evicted.get(i, -1) >= r.revision)
        replaced = _replaced_leaders(instances) if sticky else frozenset()
        ids = tuple(
            i.instance_id
            for i in instances
            if i.status is not InstanceStatus.UNHEALTHY
            and not (sticky and i.status is InstanceStatus.STANDBY)
            and i.instance_id not in evicted
            and i.instance_id not in replaced
        )
        return ServiceView(
            service=service,
            instances=instances,
            ids=ids,
            members=frozenset(ids),
            expires_at=self._expiry(ids, old, loaded),
            evicted=evicted,
            idempotent=_idempotent(instances),
        )

    def _expiry(self, ids: tuple[str, ...], old: ServiceView | None, loaded: bool) -> float:
        now = self.cache.clock()
        if not ids:
            return now + self.settings.negative_ttl
        if self.settings.mode is DiscoveryMode.WATCH:
            return NEVER
        if loaded or old is None:
            return now + self.settings.cache_ttl
        return old.expires_at  # an eviction does not make the rest of the view newer


def _replaced_leaders(instances: tuple[ServiceInstance, ...]) -> frozenset[str]:
    """ACTIVE instances of a sticky-active group with a newer leader (a larger revision)."""
    newest: dict[str, int] = {}
    leaders = [
        i
        for i in instances
        if i.status is InstanceStatus.ACTIVE and i.sticky_active_group is not None
    ]
    for i in leaders:
        group = i.sticky_active_group or ""
        newest[group] = max(newest.get(group, 0), i.leadership_revision or 0)
    return frozenset(
        i.instance_id
        for i in leaders
        if (i.leadership_revision or 0) < newest[i.sticky_active_group or ""]
    )


def _instance_id(instance: ServiceInstance) -> str:
    return instance.instance_id


def _parse(value: bytes, service: str, instance_id: str) -> ServiceInstance | None:
    try:
        instance = ServiceInstance.model_validate_json(value)
    except ValidationError:
        return None
    if instance.service_name != service or instance.instance_id != instance_id:
        return None  # a record under someone else's key: trust neither
    return instance


def _idempotent(instances: tuple[ServiceInstance, ...]) -> frozenset[str]:
    """The methods every instance's record lists as idempotent (none if one does not)."""
    common: frozenset[str] | None = None
    for instance in instances:
        listed = instance.metadata.get(IDEMPOTENT_METHODS)
        names = (
            frozenset(n for n in listed if isinstance(n, str))
            if isinstance(listed, list)
            else frozenset()
        )
        common = names if common is None else common & names
    return common or frozenset()
