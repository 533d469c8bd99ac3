"""Wiring leadership into an instance tree, before the service.

```
leadership-watch  KVWatchActor on the group's key `service-leadership.{service}.{group}`
leadership        LeadershipActor: takes, renews and releases that key
```

Started before the service, so the service knows at start whether it leads;
stopped after it, so the key is released only once the service has drained.
"""

from __future__ import annotations

from aegis_actors.actor import Actor
from aegis_actors.buckets import leadership_key
from aegis_actors.context import InstanceContext
from aegis_actors.leadership.actor import LeadershipActor
from aegis_actors.leadership.models import LeadershipSettings
from aegis_actors.registry.store import registry_bucket_spec
from aegis_actors.supervisor import ChildSpec
from aegis_actors.watch import KVWatchActor, WatchTopic


def leadership_children(
    ctx: InstanceContext, settings: LeadershipSettings, *, watch_heartbeat: float
) -> list[ChildSpec]:
    """The two children that keep `ctx` ACTIVE or STANDBY in its group (none without one)."""
    group = ctx.sticky_active_group
    if group is None:
        return []
    topic = WatchTopic()

    def watch() -> Actor:
        return KVWatchActor(
            ctx.connection,
            registry_bucket_spec(ctx.buckets),
            leadership_key(ctx.service_name, group),
            topic=topic,
            connection=ctx.connection_actor,
            idle_heartbeat=watch_heartbeat,
            kv_timeout=ctx.kv_timeout,
        )

    shutdown = ctx.kv_timeout + 1.0
    return [
        ChildSpec("leadership-watch", watch, shutdown=shutdown),
        ChildSpec(
            "leadership", lambda: LeadershipActor(ctx, group, settings, topic), shutdown=shutdown
        ),
    ]
