"""Permissions violations, told at once to whoever used the refused subject.

A server with permissions answers a publish or a subscription they refuse
with `-ERR 'Permissions Violation for Publish to "x"'`, and nothing else:
the publish is dropped, so a request on it would wait for its timeout.
nats-py hands the error to the connection's `error_cb`, apart from the
request; `connect()` passes it here, and:

- a `Requester` fails the requests it sent on that subject (and all of them
  if its reply subscription is refused) with `PermissionDeniedError`;
- `guard(client, *patterns)` cancels whatever waits inside it (a management
  request, a KV operation) when a subject matching a pattern is refused.

The error arrives about a third of a millisecond after the publish on
loopback (docs/operations/securing.md), so "denied" is known in the time a
reply would have taken. The server names the subject, not the user: the
user is the identity `connect()` used, from the connection's settings.
nats-py lowercases the server's error, subject included, so subjects are
compared without case, and errors name the subject as we sent it.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

import anyio
import structlog

from aegis_actors._errors import PermissionDeniedError
from aegis_actors._subjects import subject_matches
from aegis_actors._transport import NatsClient

log = structlog.get_logger("aegis_actors.denials")

_VIOLATION: Final = re.compile(
    r'permissions violation for (?P<op>publish|subscription) to "(?P<subject>[^"]*)"'
    r'(?: using queue "(?P<queue>[^"]*)")?',
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Violation:
    """One refusal by the server: `publish` or `subscribe`, the subject, the queue group."""

    operation: str
    subject: str
    queue: str | None = None


def parse_violation(message: str) -> Violation | None:
    """The violation in a server error's text, or None if it is another error."""
    match = _VIOLATION.search(message)
    if match is None:
        return None
    operation = "publish" if match["op"].lower() == "publish" else "subscribe"
    return Violation(operation, match["subject"], match["queue"])


#: Told of every violation; returns True when it failed something of its own
#: with it (the error then reaches a caller, so the log line is only debug).
Listener = Callable[[Violation], bool]


class Denials:
    """The violations of one connection, and who wants to hear of them."""

    def __init__(self, user: str) -> None:
        self.user = user
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` at every violation; returns the function that stops it."""
        self._listeners.append(listener)

        def stop() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return stop

    def error(self, violation: Violation, subject: str | None = None) -> PermissionDeniedError:
        """The error for `violation`, naming `subject` (as sent) if given."""
        return PermissionDeniedError(
            violation.operation, subject or violation.subject, self.user, violation.queue
        )

    def tell(self, violation: Violation) -> bool:
        """Tell every listener; True if one of them failed something with it."""
        claimed = False
        for listener in list(self._listeners):
            claimed = listener(violation) or claimed
        return claimed


_of: weakref.WeakKeyDictionary[NatsClient, Denials] = weakref.WeakKeyDictionary()


def watch_denials(client: NatsClient, user: str) -> Denials:
    """Keep the violations of `client` (connected as `user`) for listeners and guards."""
    denials = _of[client] = Denials(user)
    return denials


def denials_of(client: NatsClient) -> Denials | None:
    """The violations of `client`; None for a client not connected by `connect()`."""
    return _of.get(client)


def report_error(client: NatsClient, error: Exception) -> bool:
    """Tell a permissions violation to the listeners of `client`; False for other errors."""
    violation = parse_violation(str(error))
    if violation is None:
        return False
    denials = _of.get(client)
    claimed = denials is not None and denials.tell(violation)
    # Unclaimed (a fire-and-forget publish, a subscription): this line is all
    # anyone will see of it. Claimed: the caller's error says it already.
    (log.debug if claimed else log.warning)(
        "nats permission denied",
        operation=violation.operation,
        subject=violation.subject,
        queue=violation.queue,
        user=denials.user if denials is not None else "this connection",
    )
    return True


@asynccontextmanager
async def guard(client: NatsClient | None, *patterns: str) -> AsyncIterator[None]:
    """Cancel the body and raise `PermissionDeniedError` when a subject matching
    one of `patterns` (NATS wildcards allowed) is refused while it runs.

    A no-op for clients not connected by `connect()`.
    """
    denials = _of.get(client) if client is not None else None
    if denials is None:
        yield
        return
    refused: list[tuple[Violation, str]] = []
    lowered = [(p.lower(), p) for p in patterns]
    with anyio.CancelScope() as scope:

        def on_violation(violation: Violation) -> bool:
            if refused:
                return False
            for low, pattern in lowered:
                if subject_matches(low, violation.subject):
                    literal = "*" not in pattern and ">" not in pattern
                    refused.append((violation, pattern if literal else violation.subject))
                    scope.cancel()
                    return True
            return False

        stop = denials.listen(on_violation)
        try:
            yield
        finally:
            stop()
    if refused:
        raise denials.error(*refused[0])
