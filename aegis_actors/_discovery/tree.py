"""Wiring discovery into an actor tree: its children, and the `Caller` they serve.

```
connection    ConnectionActor (built by the tree's owner)
kv-watch      KVWatchActor on the registry (mode `watch` only)
discovery     DiscoveryCacheActor (modes `watch` and `ttl`)
```

Used by the instance tree and by `Client`, so both discover alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from aegis_actors._actor import Actor
from aegis_actors._buckets import Buckets, instance_keys
from aegis_actors._child_spec import ChildSpec
from aegis_actors._connection import Connection
from aegis_actors._discovery.cache import DiscoveryCacheActor
from aegis_actors._discovery.caller import Caller
from aegis_actors._discovery.settings import DiscoveryMode, DiscoverySettings
from aegis_actors._discovery.snapshot import DiscoveryCache
from aegis_actors._registry.store import registry_bucket_spec
from aegis_actors._subjects import Subjects
from aegis_actors._transport import NatsClient
from aegis_actors._watch import WatchTopic, watch_child


@dataclass(frozen=True, slots=True)
class DiscoveryWiring:
    children: tuple[ChildSpec, ...]
    """To start after the connection, before anything that calls."""
    caller: Caller
    cache: DiscoveryCache | None


def discovery_wiring(
    settings: DiscoverySettings,
    connection: Connection,
    subjects: Subjects,
    buckets: Buckets,
    *,
    kv_timeout: float,
    enabled: bool = True,
) -> DiscoveryWiring:
    """The children and the caller for `settings` (`enabled=False`: queue groups only)."""

    def client() -> NatsClient:
        return connection.client

    mode = settings.mode if enabled else DiscoveryMode.OFF
    if mode is DiscoveryMode.OFF:
        return DiscoveryWiring((), Caller(client, subjects, settings, None), None)
    cache = DiscoveryCache(mode)
    topic = WatchTopic() if mode is DiscoveryMode.WATCH else None
    children = []
    if topic is not None:
        children.append(
            watch_child(
                "kv-watch",
                connection,
                registry_bucket_spec(buckets),
                instance_keys(),
                topic,
                idle_heartbeat=settings.watch_heartbeat,
                kv_timeout=kv_timeout,
            )
        )

    def discovery() -> Actor:
        return DiscoveryCacheActor(
            cache, connection.client, buckets, settings, topic=topic, kv_timeout=kv_timeout
        )

    children.append(ChildSpec("discovery", discovery, shutdown=kv_timeout + 1.0))
    return DiscoveryWiring(tuple(children), Caller(client, subjects, settings, cache), cache)
