"""The base of every model that travels on the wire: camelCase fields, UTC `Z` timestamps.

And the conventions of every request of the management API: strict types,
camelCase only, unknown fields refused, server-set timestamps refused,
update fields that may be left out but not null, text fields free of
control and invisible characters (`ONE_LINE`, `LINES`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    field_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from aegis_actors._text import UNSAFE_CHARACTER, unsafe_character

#: MAJOR.MINOR.PATCH in ASCII digits (`fullmatch`: `\d` would take other scripts' digits).
VERSION_PATTERN: Final = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")


def check_version(version: str) -> str:
    """Return `version` if it is MAJOR.MINOR.PATCH in ASCII digits; else raise ValueError."""
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version):
        raise ValueError(f"version must be MAJOR.MINOR.PATCH, e.g. 1.4.2, got {version!r}")
    return version


def utc_now() -> datetime:
    return datetime.now(UTC)


def _require_timezone(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp needs a timezone (e.g. 2025-08-02T10:30:00Z)")
    # Milliseconds, as written: a value read back equals the one that was stored.
    return value.astimezone(UTC).replace(microsecond=value.microsecond // 1000 * 1000)


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, to the millisecond: `2025-08-02T10:30:00.123Z`."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: A timezone-aware instant, stored in UTC and written as `2025-08-02T10:30:00.123Z`.
Timestamp = Annotated[
    datetime,
    AfterValidator(_require_timezone),
    PlainSerializer(format_timestamp, return_type=str),
]


class WireModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields refused.

    Floats must be finite: `1e999` parses as infinity, which JSON cannot carry
    back (and which would, say, lift a limit instead of setting one).
    """

    model_config = ConfigDict(
        allow_inf_nan=False,
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
    )


#: The largest revision a bucket can reach (JetStream sequences are 64-bit unsigned).
MAX_REVISION: Final = 2**64 - 1

#: A KV revision in a request: an integer >= 1 (`"3"`, `3.0`, `true` and `null` are 422s).
Revision = Annotated[int, Strict(), Field(ge=1, le=MAX_REVISION)]


class RequestModel(WireModel):
    """A request body: camelCase only (`service_name` is an unknown field, as any other)."""

    model_config = ConfigDict(populate_by_name=False, validate_by_name=False)


class ServerTimestamps(RequestModel):
    """Refuses `createdAt` / `updatedAt` in a request: the server sets them (422)."""

    created_at: None = Field(None, exclude=True)
    updated_at: None = Field(None, exclude=True)

    @field_validator("created_at", "updated_at", mode="before")
    @classmethod
    def _server_set(cls, value: Any) -> None:
        raise PydanticCustomError("server_set", "set by the server; leave it out")


def refuse_null(value: Any) -> Any:
    """For update fields: absent means "keep"; null would be a third meaning nobody could guess."""
    if value is None:
        raise PydanticCustomError("null", "may be left out, but not null")
    return value


#: An optional revision (`delete`): absent means "whatever the revision"; `null` is a 422.
#: JS and Go clients write a missing field as null: a null that deleted
#: unconditionally would lose the check the client meant to make.
OptionalRevision = Annotated[Revision | None, BeforeValidator(refuse_null)]


def _text_rule(*, multiline: bool) -> AfterValidator:
    def check(value: str) -> str:
        found = unsafe_character(value, multiline=multiline)
        if found is not None:
            raise PydanticCustomError(
                UNSAFE_CHARACTER,
                "{description} is not allowed",
                {
                    "description": found.describe(),
                    "position": found.position,
                    "codePoint": found.code_point,
                },
            )
        return value

    return AfterValidator(check)


#: Metadata for a one-line text field of a request (an owner): no control or
#: invisible characters (`Annotated[str, ONE_LINE]`).
ONE_LINE: Final = _text_rule(multiline=False)
#: Metadata for a multi-line text field of a request (a description, comments):
#: LF and TAB allowed.
LINES: Final = _text_rule(multiline=True)
