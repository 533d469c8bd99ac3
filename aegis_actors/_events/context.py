"""What an event handler knows of the event it handles: `EventContext`, `current_event()`.

An `EventContext` is a `RequestContext` (so the trace id travels on through
the calls and events a handler makes), with the event's id and, for durable
events, its stream, sequence and delivery count, read from the subject
JetStream sends it with (`$JS.ACK.{stream}.{consumer}.{delivered}.{sequence}...`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, NamedTuple

from aegis_actors._dispatch import RequestContext, current_request

#: The header that carries an event's id; JetStream drops a second publish
#: with an id it already holds (within the stream's duplicate window).
EVENT_ID_HEADER: Final = "Nats-Msg-Id"


class AckInfo(NamedTuple):
    """What the reply subject of a JetStream delivery says about it."""

    stream: str
    consumer: str
    delivered: int
    sequence: int
    timestamp_ns: int


def parse_ack_subject(reply: str) -> AckInfo | None:
    """The delivery facts in `reply` (`$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.
    <cseq>.<ns>.<pending>`, or the form with a domain and account hash), None if it is not one."""
    tokens = reply.split(".")
    n = len(tokens)
    if n < 9 or tokens[0] != "$JS" or tokens[1] != "ACK":
        return None
    first = 2 if n == 9 else 4  # v2: $JS.ACK.<domain>.<account hash>.<stream>...
    try:
        return AckInfo(
            tokens[first],
            tokens[first + 1],
            int(tokens[first + 2]),
            int(tokens[first + 3]),
            int(tokens[first + 5]),
        )
    except (IndexError, ValueError):
        return None


@dataclass(slots=True)
class EventContext(RequestContext):
    """The event a handler is serving: read it with `current_event()`.

    Example:

        @event("events.order.*", durable=True)
        async def on_order(self, order: OrderCreated) -> None:
            event = current_event()
            if not self.ready(order):
                event.retry_later(5.0)  # the same event again in 5 s
                return
    """

    event_id: str | None = None
    """The publisher's event id (`Nats-Msg-Id`): the same for every delivery of the event."""
    delivered: int = 1
    """This delivery's number: 1 the first time, more when it is redelivered."""
    stream: str | None = None
    """The stream that holds the event (None: a core event)."""
    sequence: int | None = None
    """The event's sequence in its stream (None: a core event)."""
    timestamp_ns: int | None = None
    """When the stream stored it (Unix time, ns; None: a core event)."""
    replayed: bool = False
    """True when `aegis events dead replay` handed the event back from the dead letters."""
    _retry_after: float | None = None

    @property
    def durable(self) -> bool:
        return self.stream is not None

    def retry_later(self, delay: float = 0.0) -> None:
        """Have the event delivered again after `delay` seconds instead of acknowledging it.

        The next delivery counts towards `max_deliver`, like one after a failure.

        Raises:
            RuntimeError: the event is a core event (there is nothing to deliver it again).
        """
        if not self.durable:
            raise RuntimeError("retry_later() needs a durable event: core events are not kept")
        if not delay >= 0:
            raise ValueError(f"delay must be >= 0 seconds, got {delay!r}")
        self._retry_after = float(delay)


def current_event() -> EventContext | None:
    """The event the running handler serves (None outside an event handler)."""
    context = current_request()
    return context if isinstance(context, EventContext) else None


def event_id_of(headers: Mapping[str, str] | None) -> str | None:
    return headers.get(EVENT_ID_HEADER) if headers else None
