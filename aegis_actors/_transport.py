"""Where nats-py meets aegis: its types under one name each, and its errors translated.

Every other module takes nats-py's client as `NatsClient` from here, so that
`Client` always means aegis's own (`aegis_actors.Client`). nats-py's
exceptions become aegis's `TransportError` family (and, around KV calls, the
`StoreError` family) in this module and nowhere else, as httpcore maps its
backends' errors in one `map_exceptions`.

The hot paths (a request, a reply) keep a bare `try`: it costs nothing until
something fails, and only then is the error handed to `transport_error`.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterable, Iterator
from typing import Final

import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from aegis_actors._errors import (
    BucketNotFoundError,
    NatsUnavailableError,
    NoRespondersError,
    PermissionDeniedError,
    RequestTimeoutError,
    RevisionConflictError,
    StorePermissionError,
    StoreUnavailableError,
    TransportError,
)

__all__ = [
    "NATS_ERRORS",
    "JetStreamContext",
    "Msg",
    "NatsClient",
    "Subscription",
    "client_of",
    "close_subscriptions",
    "refuses_credentials",
    "store_errors",
    "transport_error",
    "transport_errors",
]

log = structlog.get_logger("aegis_actors.transport")

#: The base of every exception nats-py raises (its timeouts are `TimeoutError`s too).
NATS_ERRORS: Final = (nats.errors.Error,)

#: JetStream API error codes (`err_code`) aegis tells apart.
_WRONG_LAST_SEQUENCE: Final = (10071, 10164)  # "wrong last sequence"
_STREAM_NOT_FOUND: Final = 10059
#: The server refused for lack of a resource (consumers 10026, streams 10027,
#: resources 10023, memory 10028, storage 10047): worth retrying later, not a bug.
_OUT_OF_RESOURCES: Final = (10023, 10026, 10027, 10028, 10047)


def transport_error(
    exc: BaseException, subject: str, *, timeout: float = 0.0, size: int = 0, limit: int = 0
) -> Exception:
    """The aegis error for what nats-py raised while sending to (or asking) `subject`.

    `NoRespondersError` and `RequestTimeoutError` for a request nobody took or
    answered; `ValueError` for a message over the server's `max_payload`
    (`size` and `limit` in bytes); `NatsUnavailableError` for every other
    failure of the connection (closed, draining, reconnecting with a full
    buffer, stale).
    """
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, nats.errors.NoRespondersError):
        return NoRespondersError(subject)
    if isinstance(exc, TimeoutError):
        return RequestTimeoutError(subject, timeout)
    if isinstance(exc, nats.errors.MaxPayloadError):
        return ValueError(
            f"a message of {size} bytes to {subject} is over the server's limit of "
            f"{limit} bytes (max_payload)"
        )
    return NatsUnavailableError(f"cannot send to {subject}: {exc!r}")


def client_of(js: JetStreamContext) -> NatsClient | None:
    """The connection a JetStream context sends on (nats-py keeps it as `_nc`)."""
    client = getattr(js, "_nc", None)
    return client if isinstance(client, NatsClient) else None


def refuses_credentials(error: BaseException) -> bool:
    """An error of a connect that no retry would cure: the server refused the
    credentials, or TLS does not verify. During the first connect nats-py
    reports a refusal as a plain `Error` carrying `'Authorization Violation'`.
    """
    if isinstance(error, nats.errors.AuthorizationError | ssl.SSLError):
        return True
    return isinstance(error, nats.errors.Error) and "authorization violation" in str(error).lower()


@contextlib.contextmanager
def transport_errors(subject: str, *, timeout: float = 0.0) -> Iterator[None]:
    """Raise `transport_error` for whatever nats-py raises inside (off the hot path)."""
    try:
        yield
    except NATS_ERRORS as exc:
        raise transport_error(exc, subject, timeout=timeout) from exc


@contextlib.contextmanager
def store_errors(bucket: str, key: str = "", expected: int | None = None) -> Iterator[None]:
    """Turn nats-py's errors around a KV call into the store family.

    A write checked against `expected` that found another revision is a
    `RevisionConflictError`; a missing stream a `BucketNotFoundError`; a
    subject the server's permissions refuse (told by `_denials.guard`) a
    `StorePermissionError`; no answer, no quorum or no connection a
    `StoreUnavailableError`.
    """
    try:
        yield
    except PermissionDeniedError as exc:
        raise StorePermissionError(exc.operation, exc.subject, exc.user, exc.queue) from exc
    except nats.js.errors.KeyWrongLastSequenceError as exc:
        raise RevisionConflictError(bucket, key, expected or 0) from exc
    except nats.js.errors.APIError as exc:
        if exc.err_code in _WRONG_LAST_SEQUENCE:
            raise RevisionConflictError(bucket, key, expected or 0) from exc
        if exc.err_code == _STREAM_NOT_FOUND:
            raise BucketNotFoundError(bucket) from exc
        if exc.code == 503 or isinstance(exc, nats.js.errors.ServiceUnavailableError):
            raise StoreUnavailableError(f"JetStream unavailable for {bucket}: {exc}") from exc
        if exc.err_code in _OUT_OF_RESOURCES:
            raise StoreUnavailableError(f"JetStream refused for {bucket}: {exc}") from exc
        raise
    except (
        nats.errors.TimeoutError,
        nats.errors.NoRespondersError,
        nats.js.errors.NoStreamResponseError,
        nats.errors.ConnectionClosedError,
        nats.errors.ConnectionDrainingError,
        nats.errors.ConnectionReconnectingError,
        nats.errors.OutboundBufferLimitError,
        TransportError,
        TimeoutError,
    ) as exc:
        raise StoreUnavailableError(
            f"JetStream did not answer for {bucket}{'/' + key if key else ''}: {exc!r}"
        ) from exc


async def close_subscriptions(subs: Iterable[Subscription], *, drain: bool = False) -> None:
    """Unsubscribe (or `drain`: let what was delivered through first), one by one.

    Best effort: a closed connection took its subscriptions with it, so a
    failure here is logged at debug level and the rest are still closed.
    """
    for sub in subs:
        try:
            if drain:
                await sub.drain()  # type: ignore[no-untyped-call]
            else:
                await sub.unsubscribe()
        except Exception as exc:
            log.debug("closing a subscription failed", subject=sub.subject, error=repr(exc))
