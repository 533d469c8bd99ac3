"""The wire format of RPC and management replies, both ways (docs/reference/wire-protocol.md).

Success: `{"ok": true, "status": 200|201|204, "data": ..., "revision": N}`.
Error:   `{"ok": false, "status": 4xx|5xx, "error": {"code", "message", "details"}}`
with the `Nats-Service-Error-Code` / `Nats-Service-Error` headers that NATS
micro services set, so generic NATS tooling sees the failure too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError, from_json, to_json

from aegis_actors._errors import ErrorCode, ServiceError
from aegis_actors._text import UNSAFE_CHARACTER, printable

DEADLINE_HEADER: Final = "Aegis-Deadline"
TRACE_ID_HEADER: Final = "Aegis-Trace-Id"
ERROR_HEADER: Final = "Nats-Service-Error"
ERROR_CODE_HEADER: Final = "Nats-Service-Error-Code"
#: On an error reply: no handler ran (a STANDBY instance refused the request),
#: so a caller may send it to another instance whatever the method does.
NOT_SERVED_HEADER: Final = "Aegis-Not-Served"
#: Requests larger than this are refused with BAD_REQUEST before parsing.
DEFAULT_MAX_REQUEST_BYTES: Final = 256 * 1024
#: An error message goes in a header too; headers are meant to be short.
MAX_ERROR_HEADER: Final = 512
#: A 422 lists at most this many problems (a body may have thousands).
MAX_PROBLEMS: Final = 20


def ok_reply(data: Any = None, *, status: int = 200, revision: int | None = None) -> bytes:
    """Encode a success reply; `data` is anything pydantic can dump to JSON."""
    return _ok_prefix(status) + to_json(data, by_alias=True) + _ok_suffix(revision)


def ok_reply_raw(data_json: bytes, *, status: int = 200, revision: int | None = None) -> bytes:
    """Encode a success reply around data that is already JSON (the hot path)."""
    return _ok_prefix(status) + data_json + _ok_suffix(revision)


_OK_PREFIX: Final = {s: b'{"ok":true,"status":%d,"data":' % s for s in (200, 201, 202, 204)}


def _ok_prefix(status: int) -> bytes:
    return _OK_PREFIX.get(status) or b'{"ok":true,"status":%d,"data":' % status


def _ok_suffix(revision: int | None) -> bytes:
    return b"}" if revision is None else b',"revision":%d}' % revision


@dataclass(frozen=True, slots=True)
class Reply:
    """A success reply with its own status (201, 204) or KV revision: return it from an `@rpc`.

    Example:

        return Reply(definition, status=201, revision=revision)
    """

    data: Any = None
    status: int = 200
    revision: int | None = None
    data_json: bytes | None = None
    """`data` already encoded as JSON, sent as is (then `data` is not used)."""

    def __post_init__(self) -> None:
        if not 200 <= self.status <= 299:
            raise ValueError(f"a success reply needs a 2xx status, got {self.status}")

    def encode(self) -> bytes:
        data = self.data_json if self.data_json is not None else to_json(self.data, by_alias=True)
        return ok_reply_raw(data, status=self.status, revision=self.revision)


def error_reply(error: ServiceError) -> tuple[bytes, dict[str, str]]:
    """Encode an error reply and its NATS micro error headers.

    The body is JSON whatever the details hold: infinities and NaN become
    strings, objects JSON cannot carry become their `str()`.
    """
    body = to_json(
        {"ok": False, "status": error.status, "error": error.to_dict()},
        inf_nan_mode="strings",
        fallback=str,
    )
    # Header values are one line; a message with newlines would break the frame.
    one_line = _short(" ".join(error.message.split()), MAX_ERROR_HEADER)
    return body, {ERROR_CODE_HEADER: str(error.status), ERROR_HEADER: one_line}


def encode_json(value: Any) -> bytes:
    """`value` (a model or JSON value) as JSON bytes to send.

    Raises:
        ValueError: "not JSON: ...": it cannot be serialised, or it holds NaN
            or an infinity (callers say what the value was).
    """
    try:
        data = to_json(value, by_alias=True)
    except PydanticSerializationError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    problem = non_json_number(data)
    if problem is not None:
        raise ValueError(f"not JSON: {problem}")
    return data


def non_json_number(data: bytes) -> str | None:
    """Why `data` is not JSON if it holds `NaN` or `Infinity`, else None.

    pydantic (like Python's `json`) reads and writes these constants, but they
    are not JSON (RFC 8259): other clients cannot parse them. The substring
    test keeps the usual case at one scan; only a body that has the letters
    (perhaps inside a string) is parsed strictly.
    """
    if b"NaN" not in data and b"Infinity" not in data:
        return None
    try:
        from_json(data, allow_inf_nan=False)
    except ValueError as exc:
        return f"{exc} (NaN and Infinity are not JSON numbers)"
    return None


def decode_reply(data: bytes) -> tuple[Any, int | None]:
    """Decode a reply into `(data, revision)`, raising `ServiceError` for an error reply."""
    try:
        reply = from_json(data)
    except ValueError as exc:
        raise ServiceError.of(ErrorCode.INTERNAL, f"reply is not JSON: {exc}") from exc
    if not isinstance(reply, dict) or "ok" not in reply:
        raise ServiceError.of(ErrorCode.INTERNAL, "reply is not an aegis envelope")
    if reply["ok"]:
        return reply.get("data"), reply.get("revision")
    error = reply.get("error") or {}
    raise ServiceError(
        int(reply.get("status", 500)),
        str(error.get("code", ErrorCode.INTERNAL.value)),
        str(error.get("message", "")),
        error.get("details") or {},
    )


def deadline_header(timeout: float, now: float | None = None) -> str:
    """The `Aegis-Deadline` value for a call that waits `timeout` seconds from now."""
    return str(int(((time.time() if now is None else now) + timeout) * 1000))


def parse_deadline(value: str | None) -> float | None:
    """Unix time in seconds of an `Aegis-Deadline` header, or None if absent or malformed."""
    if not value:
        return None
    try:
        return int(value) / 1000.0
    except ValueError:
        return None


def _short(value: Any, limit: int = 200) -> Any:
    """Keep error details small: a 1 MiB bad value must not come back in the reply."""
    if isinstance(value, str | bytes) and len(value) > limit:
        return f"{value[:limit]!s}... ({len(value)} long)"
    if isinstance(value, dict | list) and len(to_json(value, fallback=str)) > limit:
        return f"<{type(value).__name__} of {len(value)} items>"
    return value


def from_validation_error(exc: ValidationError, *, what: str = "body") -> ServiceError:
    """Map a pydantic error: not JSON / not an object = 400, a bad field = 422.

    422 details name the first bad `field` and its `value` (docs/reference/errors.md) and
    list every problem under `errors`.
    """
    errors = exc.errors(include_url=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return ServiceError.of(ErrorCode.BAD_REQUEST, f"{what} is not valid JSON: {first['msg']}")
    if not first["loc"] and first["type"] in ("model_type", "dict_type", "model_attributes_type"):
        return ServiceError.of(ErrorCode.BAD_REQUEST, f"{what} must be a JSON object")
    # Field names come from the request too: an unknown key may be 200 KiB long.
    # And may hold ESC: the message goes in a header and to terminals, escaped.
    problems = [
        {
            "field": printable(_short(".".join(str(p) for p in e["loc"]) or what)),
            "message": e["msg"],
        }
        for e in errors[:MAX_PROBLEMS]
    ]
    field = problems[0]["field"]
    details: dict[str, Any] = {
        "field": field,
        "value": _short(first.get("input")),
        "errors": problems,
    }
    if first["type"] == UNSAFE_CHARACTER:
        context = first.get("ctx") or {}
        details["position"] = context.get("position")
        details["codePoint"] = context.get("codePoint")
    if len(errors) > MAX_PROBLEMS:
        details["moreErrors"] = len(errors) - MAX_PROBLEMS
    return ServiceError.of(ErrorCode.VALIDATION_ERROR, f"{field}: {first['msg']}", **details)
