"""The requests of `aegis.mgmt.apps.*` and `aegis.mgmt.configs.*`, and their pages.

The conventions of the management API hold (see `aegis_actors._models`):
strict types, camelCase only, unknown fields refused, `createdAt` /
`updatedAt` refused (the server sets them), update fields may be left out but
not null, and an update must change something.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import Field, Strict, field_validator, model_validator
from pydantic_core import PydanticCustomError

from aegis_actors._configuration.models import (
    APPLICATION_NAME,
    CONFIGURATION_NAME,
    MAX_CONFIG_BYTES,
    Application,
    ConfigObject,
    Configuration,
    Ulid,
)
from aegis_actors._models import (
    LINES,
    OptionalRevision,
    RequestModel,
    Revision,
    ServerTimestamps,
    WireModel,
    refuse_null,
)
from aegis_actors._pagination import DEFAULT_PAGE, Limit, NameIdCursor

StrictUlid = Annotated[Ulid, Strict()]
ApplicationName = Annotated[str, Strict(), Field(pattern=APPLICATION_NAME)]
ConfigurationName = Annotated[str, Strict(), Field(pattern=CONFIGURATION_NAME)]
#: Comments in a request: lines of visible characters (LF and TAB allowed).
Comments = Annotated[str, Strict(), Field(max_length=1000), LINES]


class _ReadOnlyIds(ServerTimestamps):
    configuration_ids: None = Field(None, exclude=True)

    @field_validator("configuration_ids", mode="before")
    @classmethod
    def _read_only(cls, value: Any) -> None:
        raise PydanticCustomError("read_only", "read-only: it lists the configurations")


# -- applications ------------------------------------------------------------------------


class CreateApplication(_ReadOnlyIds):
    """`aegis.mgmt.apps.create`."""

    name: ApplicationName
    comments: Comments = ""


class GetApplication(RequestModel):
    """`aegis.mgmt.apps.get`: by `id`, or by `name`."""

    id: StrictUlid | None = None
    name: ApplicationName | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.id is None) == (self.name is None):
            raise PydanticCustomError("one_of", "give either id or name")
        return self


class ListApplications(RequestModel):
    """`aegis.mgmt.apps.list`: sorted by name."""

    limit: Limit = DEFAULT_PAGE
    cursor: NameIdCursor | None = None


class UpdateApplication(_ReadOnlyIds):
    """`aegis.mgmt.apps.update`: at the revision it was read at."""

    id: StrictUlid
    revision: Revision
    name: ApplicationName | None = None
    comments: Comments | None = None

    _not_null = field_validator("name", "comments", mode="before")(refuse_null)

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        if not {"name", "comments"} & self.model_fields_set:
            raise PydanticCustomError("no_change", "an update needs name or comments")
        return self


class DeleteApplication(RequestModel):
    """`aegis.mgmt.apps.delete`: deletes its configurations too."""

    id: StrictUlid
    revision: OptionalRevision = None


class ApplicationPage(WireModel):
    items: list[Application]
    next_cursor: str | None


# -- configurations ----------------------------------------------------------------------


class CreateConfiguration(ServerTimestamps):
    """`aegis.mgmt.configs.create`."""

    application_id: StrictUlid
    name: ConfigurationName
    comments: Comments = ""
    config: ConfigObject = Field(description=f"A JSON object of at most {MAX_CONFIG_BYTES} bytes.")


class GetConfiguration(RequestModel):
    """`aegis.mgmt.configs.get`: by `id`, or by `applicationId` and `name`."""

    id: StrictUlid | None = None
    application_id: StrictUlid | None = None
    name: ConfigurationName | None = None

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        by_name = self.application_id is not None and self.name is not None
        if (self.id is not None) == by_name or (self.application_id is None) != (self.name is None):
            raise PydanticCustomError("one_of", "give either id, or applicationId and name")
        return self


class ListConfigurations(RequestModel):
    """`aegis.mgmt.configs.list`: of one application, or all; sorted by name."""

    application_id: StrictUlid | None = None
    limit: Limit = DEFAULT_PAGE
    cursor: NameIdCursor | None = None


class UpdateConfiguration(ServerTimestamps):
    """`aegis.mgmt.configs.update`: at the revision it was read at."""

    id: StrictUlid
    revision: Revision
    name: ConfigurationName | None = None
    comments: Comments | None = None
    config: ConfigObject | None = None

    _not_null = field_validator("name", "comments", "config", mode="before")(refuse_null)

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        if not {"name", "comments", "config"} & self.model_fields_set:
            raise PydanticCustomError("no_change", "an update needs name, comments or config")
        return self


class DeleteConfiguration(RequestModel):
    """`aegis.mgmt.configs.delete`."""

    id: StrictUlid
    revision: OptionalRevision = None


class ConfigurationHistory(RequestModel):
    """`aegis.mgmt.configs.history`: its last 10 revisions, newest first."""

    id: StrictUlid


class ConfigurationPage(WireModel):
    items: list[Configuration]
    next_cursor: str | None


class ConfigurationRevision(WireModel):
    revision: int
    configuration: Configuration


class ConfigurationHistoryPage(WireModel):
    items: list[ConfigurationRevision]
