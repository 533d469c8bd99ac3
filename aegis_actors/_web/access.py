"""What the monitor's NATS credentials may write, and the server's permission violations.

Before a page offers an edit form it should know whether the edit can succeed.
The server says what a connection may publish: `$SYS.REQ.USER.INFO` answers
any connected user with its own account and permissions (nats-server 2.10+).
The write subjects of the management API are matched against them here, the
way the server does (deny wins; a non-empty allow list must match).

A user not allowed to ask is probed instead (`ask_write_access`). What the
server refuses anyway (an older server, permissions reloaded since) comes
back as an asynchronous `-ERR 'Permissions Violation for Publish to
"..."'`, which nats-py hands to its error callback and nothing else: a request
on that subject just waits for its whole timeout. `Violations` turns it into
an immediate answer for whoever waits on that subject, and marks the
resource read-only from then on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Final

import anyio
from pydantic_core import from_json

from aegis_actors._errors import TransportError
from aegis_actors._subjects import Subjects
from aegis_actors._transport import NatsClient, transport_errors

USER_INFO_SUBJECT: Final = "$SYS.REQ.USER.INFO"
USER_INFO_TIMEOUT: Final = 2.0
WRITE_VERBS: Final = ("create", "update", "delete")
#: The management API's resources that can be written, as the pages group them.
WRITABLE: Final = ("services", "apps", "configs")
_VIOLATION: Final = re.compile(r'permissions violation for publish to "([^"]+)"', re.IGNORECASE)


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether the literal `subject` falls under `pattern` (`*` one token, `>` the rest)."""
    wanted = pattern.split(".")
    tokens = subject.split(".")
    for n, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > n
        if n >= len(tokens) or (token != "*" and token != tokens[n]):
            return False
    return len(tokens) == len(wanted)


def may_publish(permissions: Mapping[str, Any] | None, subject: str) -> bool:
    """Whether a user with `permissions` (as USER.INFO reports them) may publish `subject`."""
    if not permissions:
        return True  # no permissions block: everything is allowed
    publish = permissions.get("publish") or {}
    allow = publish.get("allow") or []
    deny = publish.get("deny") or []
    if allow and not any(subject_matches(p, subject) for p in allow):
        return False
    return not any(subject_matches(p, subject) for p in deny)


@dataclass(frozen=True, slots=True)
class WriteAccess:
    """Per writable resource, whether the credentials may create, update and delete."""

    resources: Mapping[str, bool]
    known: bool
    """False when the server did not say (then writes are assumed allowed until refused)."""

    def to_json(self) -> dict[str, Any]:
        return {"resources": dict(self.resources), "known": self.known}

    def denied(self, resource: str) -> WriteAccess:
        return WriteAccess({**self.resources, resource: False}, self.known)


ASSUMED: Final = WriteAccess(dict.fromkeys(WRITABLE, True), known=False)


def write_subjects(subjects: Subjects, resource: str) -> list[str]:
    return [subjects.mgmt(resource, verb) for verb in WRITE_VERBS]


def access_from_user_info(reply: bytes, subjects: Subjects) -> WriteAccess:
    """`WriteAccess` from a USER.INFO reply; `ASSUMED` if it says nothing usable."""
    try:
        info = from_json(reply)
    except ValueError:
        return ASSUMED
    data = info.get("data") if isinstance(info, dict) else None
    if not isinstance(data, dict) or info.get("error"):
        return ASSUMED
    permissions = data.get("permissions")
    if permissions is not None and not isinstance(permissions, dict):
        return ASSUMED
    return WriteAccess(
        {
            resource: all(may_publish(permissions, s) for s in write_subjects(subjects, resource))
            for resource in WRITABLE
        },
        known=True,
    )


def resource_of(subjects: Subjects, subject: str) -> str | None:
    """The writable resource whose write subject `subject` is (in any case), else None."""
    for resource in WRITABLE:
        if subject.lower() in (s.lower() for s in write_subjects(subjects, resource)):
            return resource
    return None


def denied_subject(error: Exception) -> str | None:
    """The subject of a permissions violation the server reported, else None.

    nats-py lowercases the server's message, subject included: compare in lowercase.
    """
    found = _VIOLATION.search(str(error))
    return found.group(1).lower() if found else None


class Violations:
    """Permission violations on one connection, handed to whoever waits on their subject.

    Its one writer is the connection's error hook (`report`).
    """

    def __init__(self) -> None:
        self._waiting: dict[str, list[anyio.Event]] = {}

    def report(self, error: Exception) -> str | None:
        """Wake the waiters of the violated subject; return that subject (None: no violation)."""
        subject = denied_subject(error)
        if subject is not None:
            for event in self._waiting.get(subject, ()):
                event.set()
        return subject

    @contextmanager
    def watching(self, subject: str) -> Iterator[anyio.Event]:
        """An event set if the server refuses a publish to `subject` while inside."""
        event = anyio.Event()
        key = subject.lower()  # as the client reports it
        self._waiting.setdefault(key, []).append(event)
        try:
            yield event
        finally:
            waiters = self._waiting[key]
            waiters.remove(event)
            if not waiters:
                del self._waiting[key]


class Refused(Exception):
    """The server refused to let this connection publish the request."""


async def request_unless_refused(
    client: NatsClient, violations: Violations, subject: str, body: bytes, *, timeout: float
) -> bytes | None:
    """The reply to a request; None without one (no responder, no answer in time).

    Raises:
        Refused: the server reported a permissions violation for `subject`.
    """
    refused_first = False
    answer: bytes | None = None
    with violations.watching(subject) as refused:
        async with anyio.create_task_group() as tg:

            async def ask() -> None:
                nonlocal answer
                with suppress(TransportError), transport_errors(subject, timeout=timeout):
                    answer = (
                        await client.request(subject, body, timeout=timeout)
                    ).data  # None: no answer
                tg.cancel_scope.cancel()

            async def denied() -> None:
                nonlocal refused_first
                await refused.wait()
                refused_first = True
                tg.cancel_scope.cancel()

            tg.start_soon(ask)
            tg.start_soon(denied)
    if refused_first:
        raise Refused(subject)
    return answer


async def ask_write_access(
    client: NatsClient, subjects: Subjects, violations: Violations
) -> WriteAccess:
    """What the connection may write: asked of the server, else found by trying.

    USER.INFO is the clean answer. A user whose permissions do not let it ask
    (an allow list without `$SYS.REQ.USER.INFO`) is probed instead: each write
    verb is sent an empty object, which the management API refuses with 422
    before doing anything (and counts as an error), unless the server refuses
    the publish first.
    """
    try:
        reply = await request_unless_refused(
            client, violations, USER_INFO_SUBJECT, b"", timeout=USER_INFO_TIMEOUT
        )
    except Refused:
        reply = None
    if reply is not None:
        access = access_from_user_info(reply, subjects)
        if access.known:
            return access
    allowed: dict[str, bool] = dict.fromkeys(WRITABLE, True)

    async def probe(resource: str, subject: str) -> None:
        try:
            await request_unless_refused(
                client, violations, subject, b"{}", timeout=USER_INFO_TIMEOUT
            )
        except Refused:
            allowed[resource] = False

    async with anyio.create_task_group() as tg:
        for resource in WRITABLE:
            for subject in write_subjects(subjects, resource):
                tg.start_soon(probe, resource, subject)
    return WriteAccess(allowed, known=True)
