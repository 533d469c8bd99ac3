"""The exception families of aegis_actors, under one root `AegisError`.

Each exception also inherits the built-in it means, so callers that know
nothing of aegis can still catch it (`AskTimeoutError` is a `TimeoutError`,
`ConfigError` is a `ValueError`).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Final


class AegisError(Exception):
    """Root of every error raised by aegis_actors."""


class ActorDeadError(AegisError, RuntimeError):
    """A message was sent to an actor that has stopped for good."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"actor {path} is dead")


class AskTimeoutError(AegisError, TimeoutError):
    """An `ask` got no answer within its timeout."""

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        super().__init__(f"actor {path} did not answer within {timeout:g} s")


class MailboxFullError(AegisError, RuntimeError):
    """A non-blocking send found the actor's mailbox full."""

    def __init__(self, path: str, capacity: int) -> None:
        self.path = path
        self.capacity = capacity
        super().__init__(f"mailbox of {path} is full ({capacity} messages)")


class ActorStartError(AegisError, RuntimeError):
    """An actor's `on_start` failed, so the actor never ran."""

    def __init__(self, path: str, reason: BaseException) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"actor {path} failed to start: {reason!r}")


class ChildSpecError(AegisError, ValueError):
    """A supervisor was given child specs that cannot all be started."""

    def __init__(self, supervisor: str, problems: Sequence[str]) -> None:
        self.supervisor = supervisor
        self.problems = tuple(problems)
        super().__init__(f"invalid child specs for {supervisor}: " + "; ".join(self.problems))


class RestartIntensityError(AegisError, RuntimeError):
    """A supervisor restarted children more often than its intensity allows.

    It stops its children and fails with this error, so its own parent decides
    what to do next (OTP's escalation).
    """

    def __init__(
        self, supervisor: str, child: str, max_restarts: int, within_seconds: float
    ) -> None:
        self.supervisor = supervisor
        self.child = child
        self.max_restarts = max_restarts
        self.within_seconds = within_seconds
        super().__init__(
            f"supervisor {supervisor} gave up: child {child!r} needed more than "
            f"{max_restarts} restarts within {within_seconds:g} s"
        )


class NatsServerError(AegisError, RuntimeError):
    """The embedded nats-server could not be found, started or stopped."""


class PortInUseError(NatsServerError):
    """The port asked of an embedded nats-server is taken; how to pick another is the caller's."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        super().__init__(f"cannot start nats-server: port {port} on {host} is already in use")


class TransportError(AegisError):
    """NATS could not carry a message (the family of the three errors below).

    nats-py's own exceptions never reach aegis users: the one place that
    translates them is `aegis_actors._transport`.
    """


class NatsUnavailableError(TransportError, OSError):
    """NATS could not be reached, or the connection cannot send now (closed, draining)."""


class ConfigError(AegisError, ValueError):
    """A configuration value or file is invalid."""


class StoreError(AegisError):
    """A KV store operation failed (the family of the errors below)."""


class KeyExistsError(StoreError, KeyError):
    """A create found the key already there."""

    def __init__(self, bucket: str, key: str) -> None:
        self.bucket = bucket
        self.key = key
        super().__init__(f"{bucket}/{key} already exists")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class RevisionConflictError(StoreError, ValueError):
    """A revision-checked write found another revision: someone wrote first."""

    def __init__(self, bucket: str, key: str, expected: int) -> None:
        self.bucket = bucket
        self.key = key
        self.expected = expected
        super().__init__(f"{bucket}/{key} is no longer at revision {expected}")


class BucketNotFoundError(StoreError, LookupError):
    """The bucket does not exist (not created yet, or deleted)."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        super().__init__(f"bucket {bucket!r} does not exist")


class StoreUnavailableError(StoreError, ConnectionError):
    """JetStream did not answer (server down, no quorum, timeout)."""


class EventNotStoredError(StoreError):
    """A durable event was not stored: its stream refused it (a limit, a bad header).

    When JetStream does not answer at all, `publish_event` raises
    `StoreUnavailableError` instead: publishing again with the same
    `event_id` is then safe, as the stream keeps one copy of an id.
    """

    def __init__(self, subject: str, event_id: str, reason: str) -> None:
        self.subject = subject
        self.event_id = event_id
        self.reason = reason
        super().__init__(f"event {event_id} on {subject} was not stored: {reason}")


class NoRespondersError(TransportError, ConnectionError):
    """Nobody subscribes to a request's subject (NATS status 503): the callee is gone."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        super().__init__(f"no responders on {subject}")


class RequestTimeoutError(TransportError, TimeoutError):
    """A NATS request got no reply within its timeout."""

    def __init__(self, subject: str, timeout: float) -> None:
        self.subject = subject
        self.timeout = timeout
        super().__init__(f"no reply on {subject} within {timeout:g} s")


class PermissionDeniedError(TransportError, PermissionError):
    """The server's permissions refuse this connection's user a subject.

    `operation` is `publish` or `subscribe`; `user` says who we connected as
    (a user name, a public key, or how we authenticated); `queue` is the
    queue group of a refused subscription, if any. Retrying does not help
    until the server's permissions change (docs/operations/securing.md).
    """

    def __init__(self, operation: str, subject: str, user: str, queue: str | None = None) -> None:
        self.operation = operation
        self.subject = subject
        self.user = user
        self.queue = queue
        in_queue = f" in queue group {queue}" if queue else ""
        super().__init__(f"{user} may not {operation} to {subject}{in_queue} (NATS permissions)")


class StorePermissionError(StoreUnavailableError, PermissionDeniedError):
    """A KV operation the server's permissions refuse: unavailable to this user.

    A `StoreUnavailableError`, so what retries an unreachable store (the
    heartbeat, a watch) retries it too (permissions may be reloaded), with a
    message that says why; a `PermissionDeniedError` for whoever asks.
    """


# -- error replies (docs/reference/errors.md) --------------------------------------


class ErrorCode(StrEnum):
    """The `code` of an error reply (docs/reference/errors.md); its status is in `STATUS`."""

    BAD_REQUEST = "BAD_REQUEST"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    REVISION_CONFLICT = "REVISION_CONFLICT"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    INTERNAL = "INTERNAL"


STATUS: Final[dict[str, int]] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.VALIDATION_ERROR: 422,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.ALREADY_EXISTS: 409,
    ErrorCode.REVISION_CONFLICT: 409,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
    ErrorCode.DEADLINE_EXCEEDED: 504,
    ErrorCode.INTERNAL: 500,
}


class ServiceError(AegisError):
    """An error reply: raise it in a handler to answer with it; `call()` raises it back.

    Example:

        raise ServiceError(404, "NOT_FOUND", f"no order {params.order_id}")
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        super().__init__(f"{status} {code}: {message}")

    @classmethod
    def of(cls, code: ErrorCode, message: str, **details: Any) -> ServiceError:
        """An error with the status that goes with `code` (see `STATUS`)."""
        return cls(STATUS[code], code.value, message, details)

    @classmethod
    def denied(cls, error: PermissionDeniedError) -> ServiceError:
        """403 PERMISSION_DENIED for a subject the server's permissions refused us."""
        return cls.of(
            ErrorCode.PERMISSION_DENIED,
            str(error),
            subject=error.subject,
            user=error.user,
            operation=error.operation,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}
