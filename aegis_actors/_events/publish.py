"""Publishing events: core (fire and forget) or durable (stored, acknowledged, stored once).

Every event gets an id (`Nats-Msg-Id`, a ULID unless the publisher gives
one). A durable publish waits for the stream's acknowledgement, and the
stream drops a second publish with an id it already holds within its
duplicate window, so a publish retried after a timeout is stored once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import nats.errors
import nats.js.errors
from ulid import ULID

from aegis_actors._buckets import Buckets
from aegis_actors._errors import EventNotStoredError, StoreUnavailableError
from aegis_actors._events.context import EVENT_ID_HEADER
from aegis_actors._events.settings import EventsSettings
from aegis_actors._events.streams import ensure_event_stream
from aegis_actors._subjects import Subjects, check_event_subject, event_domain
from aegis_actors._transport import NATS_ERRORS, NatsClient, transport_error
from aegis_actors._wire import encode_json

#: Seconds a "this domain has no stream" answer is trusted before asking again.
NO_STREAM_RECHECK: Final = 30.0
_MAX_EVENT_ID: Final = 256


@dataclass(frozen=True, slots=True)
class Published:
    """What `publish_event` did: the event's id and, if durable, where it is stored."""

    event_id: str
    stream: str | None = None
    """The stream that stored it (None: published as a core event)."""
    sequence: int | None = None
    """Its sequence there (for a duplicate: the sequence of the copy already stored)."""
    duplicate: bool = False
    """The stream already held an event with this id (within its duplicate window)."""


def new_event_id() -> str:
    """A fresh event id: a ULID (sortable by time, 26 characters)."""
    return str(ULID())


def check_event_id(event_id: str) -> str:
    if not isinstance(event_id, str) or not event_id or len(event_id) > _MAX_EVENT_ID:
        raise ValueError(f"event_id must be a string of 1-{_MAX_EVENT_ID} characters")
    if not event_id.isprintable() or any(c.isspace() for c in event_id):
        raise ValueError(f"event_id {event_id!r} must be printable, without whitespace")
    return event_id


class EventPublisher:
    """Publishes the events of one service instance or client (`publish_event`)."""

    def __init__(
        self,
        client: Callable[[], NatsClient],
        *,
        subjects: Subjects,
        buckets: Buckets,
        settings: EventsSettings,
        timeout: float,
    ) -> None:
        self._client = client
        self.subjects = subjects
        self.buckets = buckets
        self.settings = settings
        self.timeout = timeout
        # domain -> (its stream, or None and when that was last checked)
        self._streams: dict[str, tuple[str | None, float]] = {}

    async def publish(
        self,
        subject: str,
        payload: Any = None,
        *,
        durable: bool | None = None,
        event_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Published:
        """Publish `payload` on `subject`; durable if asked, or if `durable` is None and
        the subject's domain has a stream.

        Raises:
            ValueError: a bad subject or event id, or a payload that is not JSON.
            StoreUnavailableError: a durable event got no acknowledgement (publish it
                again with the same `event_id`: it is stored once).
            EventNotStoredError: the stream refused it.
            NatsUnavailableError: a core event could not be sent.
        """
        check_event_subject(subject)
        try:
            data = encode_json(payload)
        except ValueError as exc:
            raise ValueError(f"event payload for {subject} is {exc}") from None
        event_id = new_event_id() if event_id is None else check_event_id(event_id)
        all_headers = {**(headers or {}), EVENT_ID_HEADER: event_id}
        wire = self.subjects.event(subject)
        domain = event_domain(subject)
        if durable is None:
            durable = await self._has_stream(domain)
        client = self._client()
        if not durable:
            try:
                await client.publish(wire, data, headers=all_headers)
            except NATS_ERRORS as exc:
                raise transport_error(exc, wire) from exc
            return Published(event_id)
        stream = await self.stream_of(domain)
        js = client.jetstream(timeout=self.timeout)
        try:
            ack = await js.publish(wire, data, headers=all_headers)
        except nats.js.errors.NoStreamResponseError:
            # The stream went away since we looked: forget it, the next publish makes it.
            self._streams.pop(domain, None)
            raise StoreUnavailableError(
                f"event {event_id} on {subject} was not stored: no stream answered for it "
                f"({stream} is gone?); publish it again with the same event_id"
            ) from None
        except nats.js.errors.APIError as exc:
            if exc.code == 503:
                raise StoreUnavailableError(
                    f"event {event_id} on {subject} was not stored: JetStream unavailable "
                    f"({exc.description}); publish it again with the same event_id"
                ) from exc
            raise EventNotStoredError(subject, event_id, str(exc.description or exc)) from exc
        except (nats.errors.Error, TimeoutError) as exc:
            raise StoreUnavailableError(
                f"event {event_id} on {subject} was not stored: no acknowledgement within "
                f"{self.timeout:g} s ({exc!r}); publish it again with the same event_id, "
                "it is stored once"
            ) from exc
        return Published(event_id, ack.stream, ack.seq, bool(ack.duplicate))

    async def stream_of(self, domain: str) -> str:
        """The stream of `domain`'s events, made if missing (then remembered)."""
        known = self._streams.get(domain)
        if known is not None and known[0] is not None:
            return known[0]
        js = self._client().jetstream(timeout=self.timeout)
        stream = await ensure_event_stream(
            js, domain, subjects=self.subjects, buckets=self.buckets, settings=self.settings
        )
        self._streams[domain] = (stream, time.monotonic())
        return stream

    async def _has_stream(self, domain: str) -> bool:
        known = self._streams.get(domain)
        now = time.monotonic()
        if known is not None and (known[0] is not None or now - known[1] < NO_STREAM_RECHECK):
            return known[0] is not None
        js = self._client().jetstream(timeout=self.timeout)
        try:
            stream: str | None = await js.find_stream_name_by_subject(
                self.subjects.event_domain(domain)
            )
        except nats.js.errors.NotFoundError:
            stream = None
        except NATS_ERRORS:
            # JetStream not answering: send it as the core event it would be
            # without a stream; the stream (if any) still stores it.
            return False
        self._streams[domain] = (stream, now)
        return stream is not None
