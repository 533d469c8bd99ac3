"""The base of every model that travels on the wire: camelCase fields, UTC `Z` timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel


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
    """camelCase on the wire, snake_case in Python; unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
    )
