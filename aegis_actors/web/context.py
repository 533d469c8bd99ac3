"""`WebContext`: what the monitor's actors and its HTTP handlers share."""

from __future__ import annotations

from dataclasses import dataclass, field

from nats.aio.client import Client

from aegis_actors.buckets import Buckets
from aegis_actors.ref import ActorRef
from aegis_actors.subjects import Subjects
from aegis_actors.watch import WatchTopic
from aegis_actors.web.access import Violations


@dataclass(eq=False)
class WebContext:
    """What the monitor's actors and its HTTP handlers share; each field has one writer."""

    subjects: Subjects
    buckets: Buckets
    stats_interval: float
    violations: Violations = field(default_factory=Violations)
    client: Client | None = None
    """Set by the connection actor once connected."""
    connection_actor: ActorRef | None = None
    probe: ActorRef | None = None
    """Set by the probe actor when it starts."""
    fleet: ActorRef | None = None
    """Set by the fleet actor when it starts."""
    registry: WatchTopic = field(default_factory=WatchTopic)
    definitions: WatchTopic = field(default_factory=WatchTopic)

    @property
    def connection(self) -> Client:
        if self.client is None:
            raise RuntimeError("the monitor has no NATS connection yet")
        return self.client

    def connected(self, client: Client, actor: ActorRef) -> None:
        self.client = client
        self.connection_actor = actor
