"""What travels to a service's mailbox for its event handlers, and what they count.

`CoreEvent` (from a subscription), `Delivery` (from the events actor),
`Replay` (from `aegis events dead replay`), `EventPositions` (the events
actor asks); `EventStats` is a handler's endpoint in `$SRV.STATS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from aegis_actors._dispatch import EndpointStats, Request
from aegis_actors._endpoints import EventHandler
from aegis_actors._events.flow import Binding


class CoreEvent(NamedTuple):
    """A core event on its way through the mailbox to its handler.

    A named tuple, as `Request` is: one is made for every event.
    """

    subject: str
    data: bytes
    headers: Mapping[str, str] | None
    handler: EventHandler


class Delivery(NamedTuple):
    """A durable event the events actor told the service (settle it with the server)."""

    subject: str
    reply: str
    """`$JS.ACK...`: where the verdict goes, and the delivery's facts."""
    data: bytes
    headers: Mapping[str, str] | None
    binding: Binding


@dataclass(frozen=True, slots=True)
class Replay:
    """A dead letter handed back by `aegis events dead replay`: answered when handled."""

    request: Request


@dataclass(frozen=True, slots=True)
class EventPositions:
    """Ask the service: the last stream sequence each durable handler settled (by name)."""


class EventStats(EndpointStats):
    """An event handler's counters in `$SRV.STATS` (`num_requests` = events handled)."""

    def __init__(self, handler: EventHandler, subject: str, group: str) -> None:
        super().__init__(handler.name, subject, group, handler.description)
        self.durable = handler.durable is not None
        self.redelivered = 0
        """Deliveries that were not an event's first."""
        self.retried = 0
        """Events the handler failed (or asked to retry later) and will see again."""
        self.dead_lettered = 0
        self.deduplicated = 0
        """Events skipped because the handler had finished them (`dedupe`)."""
        self.binding: Binding | None = None

    def info(self) -> dict[str, Any]:
        info = super().info()
        info["metadata"] = {
            **info["metadata"],
            "kind": "event",
            "durable": str(self.durable).lower(),
        }
        return info

    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        data: dict[str, Any] = {"kind": "event", "durable": self.durable}
        if self.durable:
            facts = self.binding.facts if self.binding is not None else None
            data.update(
                stream=self.binding.stream if self.binding else None,
                consumer=self.binding.consumer if self.binding else None,
                pending=facts.pending if facts else 0,
                ack_pending=facts.ack_pending if facts else 0,
                redelivering=facts.redelivered if facts else 0,
                redelivered=self.redelivered,
                retried=self.retried,
                dead_lettered=self.dead_lettered,
            )
        data["deduplicated"] = self.deduplicated
        stats["data"] = data
        return stats
