"""Dead letters: events a durable handler gave up on, kept in stream `aegis-dead-letters`.

A dead letter is the event as it was published (its payload and headers),
on subject `aegis.dead.{service}.{handler}`, with headers saying what
happened (`DEAD_HEADERS`). `aegis events dead list` shows them; `replay`
hands one back to its service (a request on `aegis.events.replay.{service}`,
served by one instance, which runs the handler and answers), and deletes it
once handled; `drop` deletes it. `store_dead_letter` is the runner's side,
`DeadLetters` the CLI's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import nats.js.errors

from aegis_actors._buckets import Buckets
from aegis_actors._errors import ErrorCode, ServiceError, TransportError
from aegis_actors._events.context import EVENT_ID_HEADER, AckInfo
from aegis_actors._events.streams import ensure_dead_letter_stream
from aegis_actors._instance import Instance
from aegis_actors._subjects import Subjects
from aegis_actors._transport import JetStreamContext, NatsClient, store_errors, transport_errors
from aegis_actors._wire import decode_reply

SERVICE_HEADER: Final = "Aegis-Dead-Service"
HANDLER_HEADER: Final = "Aegis-Dead-Handler"
INSTANCE_HEADER: Final = "Aegis-Dead-Instance"
SUBJECT_HEADER: Final = "Aegis-Dead-Subject"
STREAM_HEADER: Final = "Aegis-Dead-Stream"
SEQUENCE_HEADER: Final = "Aegis-Dead-Sequence"
DELIVERIES_HEADER: Final = "Aegis-Dead-Deliveries"
ERROR_HEADER: Final = "Aegis-Dead-Error"
EVENT_HEADER: Final = "Aegis-Event-Id"
DEAD_HEADERS: Final = (
    SERVICE_HEADER,
    HANDLER_HEADER,
    INSTANCE_HEADER,
    SUBJECT_HEADER,
    STREAM_HEADER,
    SEQUENCE_HEADER,
    DELIVERIES_HEADER,
    ERROR_HEADER,
    EVENT_HEADER,
)
#: Longest error text kept in a header (a header is one line).
MAX_ERROR: Final = 1000


def dead_letter_headers(
    original: Mapping[str, str] | None,
    *,
    service: str,
    handler: str,
    instance_id: str,
    subject: str,
    stream: str,
    sequence: int,
    deliveries: int,
    error: str,
) -> dict[str, str]:
    """The headers of a dead letter: the event's own (but JetStream's), and what happened."""
    kept = {k: v for k, v in (original or {}).items() if not k.startswith("Nats-")}
    event_id = (original or {}).get(EVENT_ID_HEADER)
    one_line = " ".join(error.split())[:MAX_ERROR]
    return {
        **kept,
        SERVICE_HEADER: service,
        HANDLER_HEADER: handler,
        INSTANCE_HEADER: instance_id,
        SUBJECT_HEADER: subject,
        STREAM_HEADER: stream,
        SEQUENCE_HEADER: str(sequence),
        DELIVERIES_HEADER: str(deliveries),
        ERROR_HEADER: one_line,
        **({EVENT_HEADER: event_id} if event_id else {}),
        # One dead letter per event and consumer, even if it is dead-lettered twice.
        EVENT_ID_HEADER: f"{stream}.{sequence}.{service}.{handler}",
    }


async def store_dead_letter(
    js: JetStreamContext,
    instance: Instance,
    handler: str,
    wire_subject: str,
    data: bytes,
    headers: Mapping[str, str] | None,
    info: AckInfo,
    error: str,
) -> None:
    """Store an event `handler` gave up on, making the dead-letter stream if it is gone.

    Raises:
        nats-py's errors: it was not stored (the caller has the event delivered again).
    """
    subjects = instance.subjects
    letter_headers = dead_letter_headers(
        headers,
        service=instance.service_name,
        handler=handler,
        instance_id=instance.instance_id,
        subject=subjects.event_of(wire_subject),
        stream=info.stream,
        sequence=info.sequence,
        deliveries=info.delivered,
        error=error,
    )
    subject = subjects.dead_letter(instance.service_name, handler)
    try:
        await js.publish(subject, data, headers=letter_headers)
    except nats.js.errors.NoStreamResponseError:
        await ensure_dead_letter_stream(
            js, subjects=subjects, buckets=instance.buckets, settings=instance.events
        )
        await js.publish(subject, data, headers=letter_headers)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead letter as `aegis events dead list` shows it."""

    sequence: int
    """Its sequence in the dead-letter stream (what `replay` and `drop` take)."""
    time: datetime
    service: str
    handler: str
    instance_id: str
    subject: str
    """The event's subject (as published, without namespace)."""
    stream: str
    stream_sequence: int
    deliveries: int
    error: str
    event_id: str | None
    data: bytes
    headers: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        """As `--json` prints it (the payload as JSON if it is, else as text)."""
        try:
            payload: Any = json.loads(self.data) if self.data else None
        except ValueError:
            payload = self.data.decode(errors="replace")
        return {
            "sequence": self.sequence,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "service": self.service,
            "handler": self.handler,
            "instanceId": self.instance_id,
            "subject": self.subject,
            "stream": self.stream,
            "streamSequence": self.stream_sequence,
            "deliveries": self.deliveries,
            "error": self.error,
            "eventId": self.event_id,
            "payload": payload,
        }


def _letter(
    sequence: int, time: datetime | None, data: bytes, headers: Mapping[str, str]
) -> DeadLetter:
    def number(key: str) -> int:
        try:
            return int(headers.get(key, "0"))
        except ValueError:
            return 0

    return DeadLetter(
        sequence=sequence,
        time=time or datetime.fromtimestamp(0, UTC),
        service=headers.get(SERVICE_HEADER, ""),
        handler=headers.get(HANDLER_HEADER, ""),
        instance_id=headers.get(INSTANCE_HEADER, ""),
        subject=headers.get(SUBJECT_HEADER, ""),
        stream=headers.get(STREAM_HEADER, ""),
        stream_sequence=number(SEQUENCE_HEADER),
        deliveries=number(DELIVERIES_HEADER),
        error=headers.get(ERROR_HEADER, ""),
        event_id=headers.get(EVENT_HEADER),
        data=data,
        headers=dict(headers),
    )


class DeadLetters:
    """Lists, replays and drops the dead letters of one namespace (the CLI's backend)."""

    def __init__(self, client: NatsClient, *, namespace: str = "", timeout: float = 5.0) -> None:
        self.client = client
        self.subjects = Subjects(namespace)
        self.stream = Buckets(namespace).dead_letters
        self.timeout = timeout

    async def list(
        self, *, service: str | None = None, after: int = 0, limit: int = 100
    ) -> list[DeadLetter]:
        """Up to `limit` dead letters (of `service`), oldest first, from sequence `after + 1`."""
        js = self.client.jetstream(timeout=self.timeout)
        subject = self.subjects.dead_letters(service)
        found: list[DeadLetter] = []
        seq = after + 1
        with store_errors(self.stream):
            while len(found) < limit:
                try:
                    msg = await js.get_msg(self.stream, seq=seq, subject=subject, next=True)
                except nats.js.errors.NotFoundError:
                    break
                if msg.seq is None:
                    break
                found.append(_letter(msg.seq, msg.time, msg.data or b"", msg.headers or {}))
                seq = msg.seq + 1
        return found

    async def get(self, sequence: int) -> DeadLetter | None:
        js = self.client.jetstream(timeout=self.timeout)
        with store_errors(self.stream):
            try:
                msg = await js.get_msg(self.stream, seq=sequence)
            except nats.js.errors.NotFoundError:
                return None
        if msg.seq is None or msg.headers is None or SERVICE_HEADER not in msg.headers:
            return None
        return _letter(msg.seq, msg.time, msg.data or b"", msg.headers)

    async def drop(self, sequence: int) -> bool:
        """Delete one dead letter; False if it was not there."""
        js = self.client.jetstream(timeout=self.timeout)
        with store_errors(self.stream):
            try:
                return await js.delete_msg(self.stream, sequence)
            except nats.js.errors.NotFoundError:
                return False
            except nats.js.errors.APIError as exc:
                if exc.code == 404 or exc.err_code == 10057:  # no message found
                    return False
                raise

    async def replay(self, letter: DeadLetter) -> None:
        """Hand `letter` back to its service; once its handler has returned, drop it.

        Raises:
            ServiceError: the handler raised again (the letter stays), or no
                instance of the service answered (SERVICE_UNAVAILABLE).
        """
        subject = self.subjects.event_replay(letter.service)
        headers = {k: v for k, v in letter.headers.items() if k != EVENT_ID_HEADER}
        if letter.event_id:
            headers[EVENT_ID_HEADER] = letter.event_id
        try:
            with transport_errors(subject, timeout=self.timeout):
                reply = await self.client.request(
                    subject, letter.data, timeout=self.timeout, headers=headers
                )
        except TransportError as exc:
            raise ServiceError.of(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"no instance of {letter.service} took dead letter {letter.sequence}: {exc}",
            ) from exc
        decode_reply(reply.data)  # raises the handler's error as a ServiceError
        await self.drop(letter.sequence)
