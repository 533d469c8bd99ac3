"""Applications and configurations as they travel on the wire (camelCase)."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError, to_json

from aegis_actors._models import Timestamp, WireModel

APPLICATION_NAME: Final = r"^[a-z][a-z0-9-]{2,63}$"
#: Configuration names become one KV key token: no dots, wildcards or spaces.
CONFIGURATION_NAME: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
MAX_CONFIG_BYTES: Final = 64 * 1024
#: 26 Crockford base32 characters, uppercase (as the server makes them); a ULID
#: is 128 bits, so the first character (the top 3 bits) is 0-7.
_ULID: Final = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")


def _finite(value: Any) -> bool:
    """False if a NaN or an infinity hides in `value` (JSON has no such numbers)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def _small_object(value: dict[str, Any]) -> dict[str, Any]:
    # The JSON parser takes NaN, Infinity and 1e400 (as inf); stored, they
    # would silently come back as null.
    if not _finite(value):
        raise PydanticCustomError(
            "not_finite", "NaN, Infinity and numbers beyond a double are not JSON"
        )
    size = len(to_json(value))
    if size > MAX_CONFIG_BYTES:
        raise PydanticCustomError(
            "too_big",
            "config is {size} bytes as JSON; at most {limit} allowed",
            {"size": size, "limit": MAX_CONFIG_BYTES},
        )
    return value


def _ulid(value: str) -> str:
    # fullmatch: with match() and `$`, an id ending in "\n" passed and broke the KV subject (500).
    if not is_ulid(value):
        raise PydanticCustomError("ulid", "must be a ULID (26 characters of Crockford base32)")
    return value


def is_ulid(value: str) -> bool:
    """Whether `value` is an id this service makes (a name never is: names are lowercase)."""
    return _ULID.fullmatch(value) is not None


Ulid = Annotated[str, AfterValidator(_ulid)]
ApplicationName = Annotated[str, StringConstraints(pattern=APPLICATION_NAME)]
ConfigurationName = Annotated[str, StringConstraints(pattern=CONFIGURATION_NAME)]
Comments = Annotated[str, StringConstraints(max_length=1000)]
ConfigObject = Annotated[dict[str, Any], AfterValidator(_small_object)]


class Application(WireModel):
    """An application: a named owner of configurations."""

    id: Ulid = Field(description="ULID made by the server.")
    name: ApplicationName = Field(description="Unique among applications.")
    comments: Comments = ""
    configuration_ids: list[str] = Field(
        default_factory=list, description="Read-only: ids of its configurations."
    )
    created_at: Timestamp
    updated_at: Timestamp


class Configuration(WireModel):
    """A named JSON object of settings, owned by one application."""

    id: Ulid = Field(description="ULID made by the server.")
    application_id: Ulid
    name: ConfigurationName = Field(description="Unique within its application.")
    comments: Comments = ""
    config: ConfigObject = Field(description="A JSON object of at most 64 KiB.")
    created_at: Timestamp
    updated_at: Timestamp


class NameIndex(BaseModel):
    """The value of a name-index key: who holds the name, since when."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    claimed_at: Timestamp
