"""`Relay`: the pages' management requests, sent on to `aegis.mgmt.*` as any client sends them.

The browser names a resource and a verb; both are looked up in a fixed table,
so every subject is one the management API defines, never text from the
browser. The body must be a JSON object (the management API validates its
fields and answers 422 naming the field, as it does for every client). The
answer goes back as the envelope the API sent, with its status as the HTTP
status.

A write the server refuses (the credentials may not publish there) is answered
at once with 403 `PERMISSION_DENIED` by the management client (`_denials`),
and the fleet view, listening to the same violations, marks the resource
read-only for every page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from pydantic_core import from_json, to_json

from aegis_actors._errors import ErrorCode, ServiceError
from aegis_actors._mgmt.client import ManagementClient
from aegis_actors._web.context import WebContext
from aegis_actors._wire import error_reply

#: Every verb a page may use, per resource (the management API's own names).
VERBS: Final[dict[str, frozenset[str]]] = {
    "services": frozenset({"create", "get", "list", "update", "delete"}),
    "instances": frozenset({"get", "list"}),
    "apps": frozenset({"create", "get", "list", "update", "delete"}),
    "configs": frozenset({"create", "get", "list", "update", "delete", "history"}),
}
#: Largest body accepted from a page: a 64 KiB configuration, escaped, and its fields.
MAX_BODY: Final = 256 * 1024


@dataclass(frozen=True, slots=True)
class Relayed:
    status: int
    body: bytes


def refusal(code: ErrorCode, message: str, **details: object) -> Relayed:
    error = ServiceError.of(code, message, **details)
    return Relayed(error.status, error_reply(error)[0])


def parse_body(raw: bytes) -> dict[str, object] | Relayed:
    """The request's JSON object, or the 400 to answer."""
    if len(raw) > MAX_BODY:
        return refusal(ErrorCode.BAD_REQUEST, f"body of {len(raw)} bytes is over {MAX_BODY}")
    try:
        body = from_json(raw or b"{}")
    except ValueError as exc:
        return refusal(ErrorCode.BAD_REQUEST, f"body is not JSON: {exc}")
    if not isinstance(body, dict):
        return refusal(ErrorCode.BAD_REQUEST, "body must be a JSON object")
    return body


class Relay:
    """Sends the pages' requests to the management API over the monitor's connection."""

    def __init__(self, ctx: WebContext, *, timeout: float) -> None:
        self.ctx = ctx
        self.timeout = timeout

    async def send(self, resource: str, verb: str, raw: bytes) -> Relayed:
        """Relay one request; every outcome is an envelope (never an exception)."""
        verbs = VERBS.get(resource)
        if verbs is None or verb not in verbs:
            return refusal(ErrorCode.NOT_FOUND, "no such management request", resource=resource)
        body = parse_body(raw)
        if isinstance(body, Relayed):
            return body
        mgmt = ManagementClient(
            self.ctx.connection, namespace=self.ctx.subjects.namespace, timeout=self.timeout
        )
        try:
            answer = await mgmt.request(resource, verb, to_json(body))
        except ServiceError as exc:  # the API's error reply, or 403/503/504 from the client
            return Relayed(exc.status, error_reply(exc)[0])
        return Relayed(answer.status, answer.raw)
