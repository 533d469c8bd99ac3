"""Flow control of one durable consumer in one instance: what it asked for, what it holds.

The events actor asks the server for events (pull requests to
`$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}`, answered on an inbox of
its own) and tells each one to the service; the service settles it (ack,
nak, term) once its handler is done. `Flow` is the window between the two,
like a semaphore the two sides share: the events actor takes from it, the
service gives back, and neither holds more than `prefetch` events at once,
queued or running, so a slow instance does not hoard events that another
could handle.

A `Binding` is one consumer as the instance holds it now; a consumer made
again (deleted, or the service restarted) gets a new binding and a new inbox,
and events of the old one still in the mailbox are not handled (the server
delivers them again).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Final

from aegis_actors._endpoints import EventHandler
from aegis_actors._transport import NatsClient

#: Seconds a pull request waits on the server for events before it expires.
PULL_EXPIRES: Final = 30.0
#: Seconds between the server's heartbeats on an idle pull request.
IDLE_HEARTBEAT: Final = 5.0
ACK: Final = b"+ACK"
TERM: Final = b"+TERM"
IN_PROGRESS: Final = b"+WPI"


def nak(delay: float) -> bytes:
    """The verdict that has the server deliver the event again after `delay` seconds."""
    return b"-NAK" if delay <= 0 else b'-NAK {"delay": %d}' % int(delay * 1e9)


@dataclass(frozen=True, slots=True)
class ConsumerFacts:
    """What the server last said about a consumer (for `$SRV.STATS`)."""

    pending: int = 0
    """Events in the stream not yet delivered to the consumer."""
    ack_pending: int = 0
    """Events delivered to some instance and not yet settled."""
    redelivered: int = 0
    """Events out for redelivery now."""
    ack_floor: int = 0
    """The stream sequence up to which every event is settled."""


class Flow:
    """The events one instance asked for and holds, for one consumer."""

    __slots__ = (
        "_pull",
        "batch",
        "client",
        "closed",
        "held",
        "inbox",
        "last_seen",
        "next_subject",
        "paused",
        "prefetch",
        "requested",
    )

    def __init__(self, client: NatsClient, next_subject: str, inbox: str, prefetch: int) -> None:
        self.client = client
        self.next_subject = next_subject
        self.inbox = inbox
        self.prefetch = prefetch
        # Ask for at least half the window at once: one request per event would
        # cost a round trip each.
        self.batch = max(1, prefetch // 2)
        self.held: dict[str, float] = {}
        """Reply subject of each event told to the service and not settled -> when we last
        told the server it is in progress."""
        self.requested = 0
        """Events asked of the server and not yet received (or expired)."""
        self.paused = False
        self.closed = False
        self.last_seen = time.monotonic()
        self._pull = {
            "expires": int(PULL_EXPIRES * 1e9),
            "idle_heartbeat": int(IDLE_HEARTBEAT * 1e9),
        }

    async def top_up(self) -> None:
        """Ask the server for more events if the window has room for a batch."""
        if self.paused or self.closed:
            return
        room = self.prefetch - len(self.held) - self.requested
        if room < self.batch:
            return
        self.requested += room
        request = json.dumps({"batch": room, **self._pull}).encode()
        await self.client.publish(self.next_subject, request, reply=self.inbox)

    async def settle(self, reply: str, verdict: bytes) -> None:
        """Send the service's verdict on an event and make room for another."""
        await self.client.publish(reply, verdict)
        if self.held.pop(reply, None) is not None:
            await self.top_up()

    def expired(self, count: int | None) -> None:
        """The server says `count` requested events will not come (None: none will)."""
        self.requested = 0 if count is None else max(0, self.requested - count)


class Binding:
    """One durable handler's consumer as this instance holds it now (the events actor's)."""

    __slots__ = (
        "closed",
        "consumer",
        "facts",
        "flow",
        "handler",
        "service_generation",
        "stream",
    )

    def __init__(
        self,
        handler: EventHandler,
        stream: str,
        consumer: str,
        flow: Flow,
        service_generation: int,
    ) -> None:
        self.handler = handler
        self.stream = stream
        self.consumer = consumer
        self.flow = flow
        self.service_generation = service_generation
        """The incarnation of the service it delivers to: a restarted service gets a new one."""
        self.closed = False
        self.facts = ConsumerFacts()

    def close(self) -> None:
        self.closed = self.flow.closed = True
