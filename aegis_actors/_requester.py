"""`Requester`: NATS request-reply over one shared reply subscription.

nats-py's `Client.request()` wraps every request in `asyncio.wait_for`, an
extra future and a done-callback; at 100 requests in flight that costs about
as much as the request itself (17-20k req/s, against 32-36k for this
design: docs/performance.md). Here one wildcard subscription `{inbox}.*`
receives every reply; a request is one future in a dict, keyed by the last
token of its reply subject, and its timeout is one `loop.call_later` handle.

A reply with status 503 and no body is NATS's "no responders": nobody
subscribes to the subject, so the request fails at once with
`NoRespondersError` instead of waiting for its timeout. A request whose
subject the server's permissions refuse fails at once too, with
`PermissionDeniedError` (see `aegis_actors._denials`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from aegis_actors._denials import Violation, denials_of
from aegis_actors._errors import (
    NatsUnavailableError,
    NoRespondersError,
    PermissionDeniedError,
    RequestTimeoutError,
)
from aegis_actors._transport import (
    NATS_ERRORS,
    Msg,
    NatsClient,
    Subscription,
    close_subscriptions,
    transport_error,
)

STATUS_HEADER: Final = "Status"
NO_RESPONDERS_STATUS: Final = "503"
#: Replies the client may buffer for the shared subscription before it drops
#: them as a slow consumer: far above any sane number of calls in flight.
PENDING_MSGS_LIMIT: Final = 65_536
PENDING_BYTES_LIMIT: Final = 64 * 1024 * 1024


class Requester:
    """Sends requests on one NATS connection and matches their replies.

    Start it once per connection (`await requester.start()`); it then serves
    any number of concurrent `request()`s. Subscriptions survive reconnects
    (the client renews them), so a requester lives as long as its connection.
    """

    def __init__(self, client: NatsClient) -> None:
        self.client = client
        self._futures: dict[str, asyncio.Future[Msg]] = {}
        #: The subject of each request waiting, to fail it when the subject is refused.
        self._subjects: dict[str, str] = {}
        self._refused: PermissionDeniedError | None = None
        self._unlisten: Callable[[], None] | None = None
        self._next = 0
        self._prefix = ""
        self._cut = 0
        self._sub: Subscription | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def started(self) -> bool:
        return self._sub is not None

    @property
    def in_flight(self) -> int:
        """Requests waiting for their reply."""
        return len(self._futures)

    async def start(self) -> None:
        """Subscribe to the reply subjects (idempotent).

        Raises:
            NatsUnavailableError: the connection cannot subscribe now.
        """
        if self._sub is not None:
            return
        self._loop = asyncio.get_running_loop()
        prefix = self.client.new_inbox() + "."
        try:
            self._sub = await self.client.subscribe(
                prefix + "*",
                cb=self._on_reply,
                pending_msgs_limit=PENDING_MSGS_LIMIT,
                pending_bytes_limit=PENDING_BYTES_LIMIT,
            )
        except NATS_ERRORS as exc:
            raise NatsUnavailableError(f"cannot subscribe for replies: {exc!r}") from exc
        self._prefix, self._cut = prefix, len(prefix)
        denials = denials_of(self.client)
        if denials is not None:
            self._unlisten = denials.listen(self._on_violation)

    async def close(self) -> None:
        """Unsubscribe and fail every request still waiting (with `NatsUnavailableError`)."""
        sub, self._sub = self._sub, None
        futures, self._futures = self._futures, {}
        self._subjects = {}
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        for future in futures.values():
            if not future.done():
                future.set_exception(NatsUnavailableError("the requester was closed"))
        if sub is not None:
            await close_subscriptions([sub])

    async def request(
        self,
        subject: str,
        payload: bytes,
        *,
        timeout: float,
        headers: dict[str, str] | None = None,
    ) -> Msg:
        """Publish `payload` to `subject` and return the reply.

        Raises:
            NoRespondersError: nobody subscribes to `subject` (known at once).
            RequestTimeoutError: no reply within `timeout` seconds.
            NatsUnavailableError: the connection cannot send (closed, draining,
                or its reconnect buffer is full).
            ValueError: the payload is larger than the server accepts.
            PermissionDeniedError: the server's permissions refuse `subject`
                (or our reply subscription) to this connection's user.
        """
        loop = self._loop
        if loop is None or self._sub is None:
            raise NatsUnavailableError("the requester is not started")
        if self._refused is not None:
            raise self._refused
        self._next += 1
        token = str(self._next)
        future: asyncio.Future[Msg] = loop.create_future()
        self._futures[token] = future
        self._subjects[token] = subject
        timer = loop.call_later(timeout, self._expire, token, subject, timeout)
        try:
            try:
                await self.client.publish(
                    subject,
                    payload,
                    reply=self._prefix + token,
                    headers=headers,
                )
            except NATS_ERRORS as exc:
                raise transport_error(
                    exc, subject, size=len(payload), limit=self.client.max_payload
                ) from exc
            msg = await future
        finally:
            timer.cancel()
            self._futures.pop(token, None)
            self._subjects.pop(token, None)
        reply_headers = msg.headers
        if (
            reply_headers is not None
            and not msg.data
            and reply_headers.get(STATUS_HEADER) == NO_RESPONDERS_STATUS
        ):
            raise NoRespondersError(subject)
        return msg

    async def _on_reply(self, msg: Msg) -> None:
        future = self._futures.pop(msg.subject[self._cut :], None)
        if future is not None and not future.done():
            future.set_result(msg)

    def _on_violation(self, violation: Violation) -> bool:
        denials = denials_of(self.client)
        if denials is None:
            return False
        # nats-py lowercases the server's error: compare without case.
        if violation.operation == "subscribe":
            if violation.subject != (self._prefix + "*").lower():
                return False
            # No reply can ever reach us: every request, now and later, fails.
            self._refused = denials.error(violation, self._prefix + "*")
            refused = [(token, self._refused) for token in self._subjects]
        else:
            refused = [
                (token, denials.error(violation, subject))
                for token, subject in self._subjects.items()
                if subject.lower() == violation.subject
            ]
        for token, error in refused:
            future = self._futures.pop(token, None)
            if future is not None and not future.done():
                future.set_exception(error)
        return bool(refused)

    def _expire(self, token: str, subject: str, timeout: float) -> None:
        future = self._futures.pop(token, None)
        if future is not None and not future.done():
            future.set_exception(RequestTimeoutError(subject, timeout))
