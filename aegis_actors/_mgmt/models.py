"""What the management API reads and writes: service definitions and its requests.

The rules are in docs/reference/management-api.md. Every field is strictly typed (a number is not a
string, `"3"` is not a revision), so a wrong type is a 422 naming the field.
Patterns are checked with `fullmatch` on ASCII classes: a regex `$` would let
`"orders\\n"` through, and `\\d` would take Arabic-Indic digits as a version.

Timestamps are the server's: a request that carries `createdAt` or
`updatedAt` is refused with 422 rather than silently ignored, so a client
that tries to set them (a migration copying old records, say) learns at once
that they would not be kept.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import AfterValidator, Field, Strict, field_validator, model_validator
from pydantic_core import PydanticCustomError

from aegis_actors._models import (
    LINES,
    ONE_LINE,
    VERSION_PATTERN,
    OptionalRevision,
    RequestModel,
    Revision,
    ServerTimestamps,
    Timestamp,
    WireModel,
    refuse_null,
)
from aegis_actors._pagination import DEFAULT_PAGE, MAX_PAGE, Limit
from aegis_actors._registry.models import ServiceInstance
from aegis_actors._subjects import SERVICE_NAME, SERVICE_NAME_RE

INSTANCE_ID_PATTERN: Final = re.compile(rf"({SERVICE_NAME})-[0-9a-f]{{8}}")
OWNER_MAX: Final = 100
DESCRIPTION_MAX: Final = 500


def _service_name(value: str) -> str:
    if not SERVICE_NAME_RE.fullmatch(value):
        raise PydanticCustomError(
            "service_name",
            "must be 3-64 characters: lowercase letters, digits and '-', starting with a "
            "letter (^[a-z][a-z0-9-]{2,63}$)",
        )
    return value


def _version(value: str) -> str:
    if not VERSION_PATTERN.fullmatch(value):
        raise PydanticCustomError("version", "must be MAJOR.MINOR.PATCH, e.g. 1.4.2")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "must not be blank (only whitespace)")
    return value


def _instance_id(value: str) -> str:
    if not INSTANCE_ID_PATTERN.fullmatch(value):
        raise PydanticCustomError(
            "instance_id", "must be {serviceName}-{8 lowercase hex digits}, e.g. orders-1a2b3c4d"
        )
    return value


ServiceName = Annotated[str, Strict(), AfterValidator(_service_name)]
#: A stored owner: what any earlier server may have written, so that reading it never fails.
Owner = Annotated[str, Strict(), Field(min_length=1, max_length=OWNER_MAX)]
#: An owner in a request: also not blank, one line of visible characters. Kept
#: as sent (not stripped): what a client writes is what it reads back.
NewOwner = Annotated[Owner, AfterValidator(_not_blank), ONE_LINE]
Description = Annotated[str, Strict(), Field(max_length=DESCRIPTION_MAX)]
#: A description in a request: lines of visible characters (LF and TAB allowed).
NewDescription = Annotated[Description, LINES]
Version = Annotated[str, Strict(), AfterValidator(_version)]
InstanceId = Annotated[str, Strict(), AfterValidator(_instance_id)]


class ServiceDefinition(WireModel):
    """A service the fleet knows about: key `{serviceName}` of bucket `service-definitions`."""

    service_name: ServiceName = Field(description="Unique name; the key; never changes.")
    owner: Owner = Field(
        description="Who answers for the service (1-100 characters, not only whitespace; "
        "kept as sent, surrounding whitespace included)."
    )
    description: Description = Field("", description="What the service does (0-500 characters).")
    version: Version = Field(description="Semantic version, MAJOR.MINOR.PATCH.")
    created_at: Timestamp = Field(description="Set by the server when the definition is created.")
    updated_at: Timestamp = Field(description="Set by the server at every update.")


class CreateService(ServerTimestamps):
    """`aegis.mgmt.services.create`: a definition without timestamps."""

    service_name: ServiceName
    owner: NewOwner
    description: NewDescription = ""
    version: Version


class GetService(RequestModel):
    """`aegis.mgmt.services.get`."""

    service_name: ServiceName


class ListServices(RequestModel):
    """`aegis.mgmt.services.list`: a page of definitions sorted by name."""

    limit: Limit = Field(
        DEFAULT_PAGE, description=f"Definitions per page, 1-{MAX_PAGE} (default {DEFAULT_PAGE})."
    )
    cursor: ServiceName | None = Field(
        None, description="`nextCursor` of the previous page: the page starts after it."
    )


class UpdateService(ServerTimestamps):
    """`aegis.mgmt.services.update`: the fields to change, at the revision they were read at."""

    service_name: ServiceName
    revision: Revision = Field(description="The definition's current revision (optimistic lock).")
    owner: NewOwner | None = None
    description: NewDescription | None = None
    version: Version | None = None

    _not_null = field_validator("owner", "description", "version", mode="before")(refuse_null)

    @model_validator(mode="after")
    def _changes_something(self) -> UpdateService:
        if not self.changes():
            raise PydanticCustomError(
                "no_change", "an update needs at least one of owner, description, version"
            )
        return self

    def changes(self) -> dict[str, str]:
        """The fields this update sets (by their Python names)."""
        return {
            name: getattr(self, name)
            for name in ("owner", "description", "version")
            if name in self.model_fields_set
        }


class DeleteService(RequestModel):
    """`aegis.mgmt.services.delete`: with `revision`, only if the definition is still at it."""

    service_name: ServiceName
    revision: OptionalRevision = None


class ServicePage(WireModel):
    """One page of `services.list`."""

    items: list[ServiceDefinition]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class ListInstances(RequestModel):
    """`aegis.mgmt.instances.list`: every live instance, or those of one service."""

    service_name: ServiceName | None = None


class GetInstance(RequestModel):
    """`aegis.mgmt.instances.get`."""

    instance_id: InstanceId


class InstanceList(WireModel):
    """The answer of `instances.list`, sorted by service and instance id."""

    items: list[ServiceInstance]
