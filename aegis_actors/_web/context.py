"""`WebContext`: what the monitor's actors and its HTTP handlers share."""

from __future__ import annotations

from dataclasses import dataclass, field

from aegis_actors._buckets import Buckets
from aegis_actors._ref import ActorRef
from aegis_actors._subjects import Subjects
from aegis_actors._transport import NatsClient
from aegis_actors._watch import WatchTopic


@dataclass(eq=False)
class WebContext:
    """What the monitor's actors and its HTTP handlers share; each field has one writer."""

    subjects: Subjects
    buckets: Buckets
    stats_interval: float
    client: NatsClient | None = None
    """Set by the connection actor once connected."""
    connection_actor: ActorRef | None = None
    probe: ActorRef | None = None
    """Set by the probe actor when it starts."""
    fleet: ActorRef | None = None
    """Set by the fleet actor when it starts."""
    registry: WatchTopic = field(default_factory=WatchTopic)
    definitions: WatchTopic = field(default_factory=WatchTopic)

    @property
    def connection(self) -> NatsClient:
        if self.client is None:
            raise RuntimeError("the monitor has no NATS connection yet")
        return self.client

    def connected(self, client: NatsClient, actor: ActorRef) -> None:
        self.client = client
        self.connection_actor = actor
