"""Wiring leadership into an instance tree, before the service.

```
leadership-watch  KVWatchActor on the group's key `service-leadership.{service}.{group}`
leadership        LeadershipActor: takes, renews and releases that key
```

Started before the service, so the service knows at start whether it leads;
stopped after it, so the key is released only once the service has drained.
"""

from __future__ import annotations

from aegis_actors._buckets import leadership_key
from aegis_actors._cell import Cell, Readable
from aegis_actors._child_spec import ChildSpec
from aegis_actors._connection import Connection
from aegis_actors._instance import Instance
from aegis_actors._leadership.actor import LeadershipActor
from aegis_actors._leadership.models import Leadership, LeadershipSettings
from aegis_actors._ref import ActorRef
from aegis_actors._registry.store import registry_bucket_spec
from aegis_actors._watch import WatchTopic, watch_child


def leadership_children(
    instance: Instance,
    settings: LeadershipSettings,
    *,
    connection: Connection,
    leadership: Cell[Leadership | None],
    service: Readable[ActorRef | None],
    heartbeat: Readable[ActorRef | None],
    watch_heartbeat: float,
) -> list[ChildSpec]:
    """The two children that keep `instance` ACTIVE or STANDBY in its group (none without one).

    The leadership actor is the one writer of `leadership`.
    """
    group = instance.sticky_active_group
    if group is None:
        return []
    topic = WatchTopic()
    shutdown = instance.kv_timeout + 1.0

    def lead() -> LeadershipActor:
        return LeadershipActor(
            instance,
            group,
            settings,
            topic,
            connection=connection,
            leadership=leadership,
            service=service,
            heartbeat=heartbeat,
        )

    return [
        watch_child(
            "leadership-watch",
            connection,
            registry_bucket_spec(instance.buckets),
            leadership_key(instance.service_name, group),
            topic,
            idle_heartbeat=watch_heartbeat,
            kv_timeout=instance.kv_timeout,
        ),
        ChildSpec("leadership", lead, shutdown=shutdown),
    ]
