"""What `@event(..., durable=True)` takes: how a durable handler is delivered its events."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final


class DeliverPolicy(StrEnum):
    """Where a new consumer starts in its domain's stream (`deliver=`)."""

    ALL = "all"
    """From the first event the stream still holds."""
    NEW = "new"
    """From the events published after the consumer is made."""
    LAST = "last"
    """From the last event of the stream."""
    LAST_PER_SUBJECT = "last_per_subject"
    """From the last event of each subject (e.g. the latest state of each order)."""


#: `deliver=`: a policy, a stream sequence (int), or a time (an aware datetime).
Deliver = DeliverPolicy | int | datetime

DEFAULT_MAX_DELIVER: Final = 5
DEFAULT_BACKOFF: Final = (1.0, 5.0, 30.0)
DEFAULT_ACK_WAIT: Final = 30.0
DEFAULT_MAX_ACK_PENDING: Final = 1000
DEFAULT_PREFETCH: Final = 64


@dataclass(frozen=True, slots=True)
class DurableOptions:
    """How one durable handler gets its events (see `@event`)."""

    max_deliver: int = DEFAULT_MAX_DELIVER
    """Deliveries of one event before it goes to the dead letters."""
    backoff: tuple[float, ...] = DEFAULT_BACKOFF
    """Seconds before the n-th redelivery after the handler raised (the last one repeats)."""
    ack_wait: float = DEFAULT_ACK_WAIT
    """Seconds without news from an instance holding an event before the event goes to
    another: how long a dead instance's events wait. A live instance says it is still
    working every `ack_wait / 2`, so a handler may run longer."""
    deliver: Deliver = DeliverPolicy.ALL
    """Where the consumer starts when it is made (a new service, or after a reset)."""
    max_ack_pending: int = DEFAULT_MAX_ACK_PENDING
    """Events out at once across all instances of the service."""
    prefetch: int = DEFAULT_PREFETCH
    """Events one instance holds at once (queued or running)."""

    def __post_init__(self) -> None:
        if not isinstance(self.max_deliver, int) or self.max_deliver < 1:
            raise ValueError(f"max_deliver must be an int >= 1, got {self.max_deliver!r}")
        if not self.backoff or not all(_seconds(d, zero=True) for d in self.backoff):
            raise ValueError(
                f"backoff must be a non-empty sequence of seconds >= 0, got {self.backoff!r}"
            )
        if not _seconds(self.ack_wait) or self.ack_wait < 1:
            raise ValueError(f"ack_wait must be >= 1 second, got {self.ack_wait!r}")
        if not isinstance(self.max_ack_pending, int) or self.max_ack_pending < 1:
            raise ValueError(f"max_ack_pending must be an int >= 1, got {self.max_ack_pending!r}")
        if not isinstance(self.prefetch, int) or not 1 <= self.prefetch <= self.max_ack_pending:
            raise ValueError(
                f"prefetch must be an int from 1 to max_ack_pending ({self.max_ack_pending}), "
                f"got {self.prefetch!r}"
            )
        deliver = self.deliver
        if isinstance(deliver, bool) or not isinstance(deliver, DeliverPolicy | int | datetime):
            raise ValueError(
                f"deliver must be one of {[p.value for p in DeliverPolicy]}, a stream sequence "
                f"(int >= 1) or an aware datetime, got {deliver!r}"
            )
        if isinstance(deliver, int) and not isinstance(deliver, DeliverPolicy) and deliver < 1:
            raise ValueError(f"deliver as a stream sequence must be >= 1, got {deliver}")
        if isinstance(deliver, datetime) and deliver.tzinfo is None:
            raise ValueError(f"deliver as a time must be timezone-aware, got {deliver!r}")

    def redelivery_delay(self, delivered: int) -> float:
        """Seconds before redelivering an event whose `delivered`-th delivery failed."""
        return self.backoff[min(delivered, len(self.backoff)) - 1]


def _seconds(value: Any, *, zero: bool = False) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= 0 if zero else value > 0)
    )


def durable_options(**given: Any) -> DurableOptions:
    """`DurableOptions` from `@event`'s keywords (None: the default)."""
    chosen = {key: value for key, value in given.items() if value is not None}
    if "backoff" in chosen:
        backoff = chosen["backoff"]
        chosen["backoff"] = (backoff,) if isinstance(backoff, int | float) else tuple(backoff)
    if isinstance(chosen.get("deliver"), str):
        try:
            chosen["deliver"] = DeliverPolicy(chosen["deliver"])
        except ValueError:
            raise ValueError(
                f"deliver must be one of {[p.value for p in DeliverPolicy]}, a stream sequence "
                f"or an aware datetime, got {chosen['deliver']!r}"
            ) from None
    return DurableOptions(**chosen)
