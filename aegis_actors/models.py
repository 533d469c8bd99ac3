"""The base of every model that travels on the wire: camelCase fields, UTC `Z` timestamps."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel

#: MAJOR.MINOR.PATCH in ASCII digits (`fullmatch`: `\d` would take other scripts' digits).
VERSION_PATTERN: Final = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")


def check_version(version: str) -> str:
    """Return `version` if it is MAJOR.MINOR.PATCH (SPEC section 6); else raise ValueError."""
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
