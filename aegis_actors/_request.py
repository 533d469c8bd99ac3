"""A request on its way to a handler: the mailbox message, and the context a handler reads.

`Request` is what a service's subscriptions put in its mailbox: the subject,
the reply subject, the body and the headers, nothing of the NATS client's
own message type. `RequestContext` is what the running handler (and every
`call()` it makes) reads through `current_request()`: the method, the
caller's deadline and trace id.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass

from aegis_actors._wire import TRACE_ID_HEADER


@dataclass(frozen=True, slots=True)
class Request:
    """A request as it travels through a service's mailbox."""

    subject: str
    reply: str
    """Where the answer goes ("" when the sender waits for none)."""
    data: bytes
    headers: Mapping[str, str] | None


@dataclass(slots=True)
class RequestContext:
    """The request a handler is serving: read it with `current_request()`."""

    subject: str
    method: str
    headers: Mapping[str, str] | None
    deadline: float | None
    """Unix time (seconds) after which the caller no longer waits, from `Aegis-Deadline`."""
    _trace_id: str | None = None

    @property
    def trace_id(self) -> str:
        """The caller's `Aegis-Trace-Id`, or a new one for this request."""
        if self._trace_id is None:
            header = self.headers.get(TRACE_ID_HEADER) if self.headers else None
            self._trace_id = header or secrets.token_hex(8)
        return self._trace_id

    def remaining(self) -> float | None:
        """Seconds until the deadline (negative once past), None without a deadline."""
        return None if self.deadline is None else self.deadline - time.time()


_current_request: ContextVar[RequestContext | None] = ContextVar("aegis_request", default=None)


def current_request() -> RequestContext | None:
    """The request the running handler serves (None outside a handler)."""
    return _current_request.get()
