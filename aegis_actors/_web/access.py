"""What the monitor's NATS credentials may write (asked of the server, else found by trying).

Before a page offers an edit form it should know whether the edit can succeed.
The server says what a connection may publish: `$SYS.REQ.USER.INFO` answers
any connected user with its own account and permissions (nats-server 2.10+).
The write subjects of the management API are matched against them here, the
way the server does (deny wins; a non-empty allow list must match).

A user not allowed to ask is probed instead (`ask_write_access`). What the
server refuses anyway (an older server, permissions reloaded since) reaches
the management client as an immediate 403 (`_denials`), and the fleet view,
which listens to the connection's violations, marks the resource read-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Final

import anyio
from pydantic_core import from_json

from aegis_actors._denials import guard
from aegis_actors._errors import PermissionDeniedError, TransportError
from aegis_actors._subjects import Subjects, subject_matches
from aegis_actors._transport import NatsClient, transport_errors

USER_INFO_SUBJECT: Final = "$SYS.REQ.USER.INFO"
USER_INFO_TIMEOUT: Final = 2.0
WRITE_VERBS: Final = ("create", "update", "delete")
#: The management API's resources that can be written, as the pages group them.
WRITABLE: Final = ("services", "apps", "configs")


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


class Refused(Exception):
    """The server refused to let this connection publish the request."""


async def request_unless_refused(
    client: NatsClient, subject: str, body: bytes, *, timeout: float
) -> bytes | None:
    """The reply to a request; None without one (no responder, no answer in time).

    Raises:
        Refused: the server reported a permissions violation for `subject`.
    """
    try:
        async with guard(client, subject):
            with suppress(TransportError), transport_errors(subject, timeout=timeout):
                return (await client.request(subject, body, timeout=timeout)).data
    except PermissionDeniedError:
        raise Refused(subject) from None
    return None


async def ask_write_access(client: NatsClient, subjects: Subjects) -> WriteAccess:
    """What the connection may write: asked of the server, else found by trying.

    USER.INFO is the clean answer. A user whose permissions do not let it ask
    (an allow list without `$SYS.REQ.USER.INFO`) is probed instead: each write
    verb is sent an empty object, which the management API refuses with 422
    before doing anything (and counts as an error), unless the server refuses
    the publish first.
    """
    try:
        reply = await request_unless_refused(
            client, USER_INFO_SUBJECT, b"", timeout=USER_INFO_TIMEOUT
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
            await request_unless_refused(client, subject, b"{}", timeout=USER_INFO_TIMEOUT)
        except Refused:
            allowed[resource] = False

    async with anyio.create_task_group() as tg:
        for resource in WRITABLE:
            for subject in write_subjects(subjects, resource):
                tg.start_soon(probe, resource, subject)
    return WriteAccess(allowed, known=True)
