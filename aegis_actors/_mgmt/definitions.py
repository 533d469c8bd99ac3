"""The `service-definitions` bucket: create, read, update and delete definitions atomically.

Every write is decided by the server, never by a read followed by a blind
write: a create is a write expected at revision 0 (or at the tombstone of a
deleted definition), an update or a delete is a write expected at the
revision the client names. Of two racing writers exactly one wins and the
other gets 409, so no update is ever lost.

Outcomes the API names (404, 409) are raised here as `ServiceError`s; an
unreachable store is left as `StoreUnavailableError` for the caller to map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from pydantic import ValidationError

from aegis_actors._buckets import Buckets
from aegis_actors._errors import (
    ErrorCode,
    KeyExistsError,
    RevisionConflictError,
    ServiceError,
    StoreError,
)
from aegis_actors._kv import BucketSpec, Entry, KVBucket
from aegis_actors._mgmt.models import CreateService, ServiceDefinition, UpdateService
from aegis_actors._models import utc_now
from aegis_actors._transport import JetStreamContext

#: Revisions kept per definition: enough to see what the last few updates changed.
HISTORY: Final = 5
#: A delete without `revision` retries when a write slips in between its read
#: and its revision-checked delete; past this many, something keeps rewriting it.
DELETE_ATTEMPTS: Final = 10


def definitions_bucket_spec(buckets: Buckets) -> BucketSpec:
    return BucketSpec(
        name=buckets.definitions,
        description="aegis: service definitions (never expire)",
        history=HISTORY,
    )


@dataclass(frozen=True, slots=True)
class Versioned:
    """A definition and the KV revision it was read or written at."""

    definition: ServiceDefinition
    revision: int


def encode(definition: ServiceDefinition) -> bytes:
    """The stored form: the wire JSON (camelCase), so `nats kv get` shows what the API does."""
    return definition.model_dump_json().encode()


def decode(entry: Entry) -> ServiceDefinition:
    """Parse a stored definition.

    Raises:
        StoreError: the value is not a definition of its key (written by hand, or corrupt).
    """
    try:
        definition = ServiceDefinition.model_validate_json(entry.value)
    except ValidationError as exc:
        raise StoreError(
            f"definition {entry.key!r} at revision {entry.revision} does not parse: "
            f"{exc.error_count()} errors, first: {exc.errors(include_url=False)[0]['msg']}"
        ) from None
    if definition.service_name != entry.key:
        raise StoreError(
            f"definition under key {entry.key!r} names {definition.service_name!r} instead"
        )
    return definition


def _not_found(name: str) -> ServiceError:
    return ServiceError.of(
        ErrorCode.NOT_FOUND, f"no service definition named {name!r}", serviceName=name
    )


def _conflict(name: str, revision: int, current: int | None = None) -> ServiceError:
    details: dict[str, object] = {"serviceName": name, "revision": revision}
    if current is not None:
        details["currentRevision"] = current
    now = f" (it is at {current})" if current is not None else ""
    return ServiceError.of(
        ErrorCode.REVISION_CONFLICT,
        f"service definition {name!r} is no longer at revision {revision}{now}; "
        "read it again and retry",
        **details,
    )


class DefinitionStore:
    """Service definitions in one KV bucket, key = serviceName."""

    def __init__(self, bucket: KVBucket) -> None:
        self.bucket = bucket

    @classmethod
    async def open(cls, js: JetStreamContext, buckets: Buckets) -> DefinitionStore:
        return cls(await KVBucket.ensure(js, definitions_bucket_spec(buckets)))

    async def create(self, request: CreateService) -> Versioned:
        """Store a new definition, timestamped now.

        Raises:
            ServiceError: 409 ALREADY_EXISTS if the name is taken.
        """
        now = utc_now()
        definition = ServiceDefinition(
            service_name=request.service_name,
            owner=request.owner,
            description=request.description,
            version=request.version,
            created_at=now,
            updated_at=now,
        )
        try:
            revision = await self.bucket.create(request.service_name, encode(definition))
        except KeyExistsError:
            raise ServiceError.of(
                ErrorCode.ALREADY_EXISTS,
                f"a service definition named {request.service_name!r} already exists",
                serviceName=request.service_name,
            ) from None
        return Versioned(definition, revision)

    async def get(self, name: str) -> Versioned:
        """The current definition.

        Raises:
            ServiceError: 404 NOT_FOUND.
        """
        entry = await self.bucket.get(name)
        if entry is None:
            raise _not_found(name)
        return Versioned(decode(entry), entry.revision)

    async def update(self, request: UpdateService) -> Versioned:
        """Apply the request's changes if the definition is still at `request.revision`.

        Raises:
            ServiceError: 404 NOT_FOUND; 409 REVISION_CONFLICT when another write came first.
        """
        name = request.service_name
        current = await self.bucket.get(name)
        if current is None:
            raise _not_found(name)
        if current.revision != request.revision:
            raise _conflict(name, request.revision, current.revision)
        definition = decode(current).model_copy(
            update={**request.changes(), "updated_at": utc_now()}
        )
        try:
            revision = await self.bucket.update(name, encode(definition), revision=request.revision)
        except RevisionConflictError:
            # Written (or deleted) between our read and our write: the server refused.
            raise _conflict(name, request.revision) from None
        return Versioned(definition, revision)

    async def delete(self, name: str, revision: int | None = None) -> None:
        """Delete the definition (watchers see a delete; its history stays until overwritten).

        Without `revision`, whatever the definition's revision; with it, only at it.

        Raises:
            ServiceError: 404 NOT_FOUND; 409 REVISION_CONFLICT on a stale `revision`.
        """
        for _ in range(DELETE_ATTEMPTS):
            current = await self.bucket.get(name)
            if current is None:
                raise _not_found(name)
            if revision is not None and current.revision != revision:
                raise _conflict(name, revision, current.revision)
            try:
                # Revision-checked even without `revision`: a plain delete of a
                # key deleted meanwhile would "succeed" twice instead of 404.
                await self.bucket.delete(name, revision=current.revision)
            except RevisionConflictError:
                continue  # read again: deleted (404), changed (409 or retry)
            return
        raise ServiceError.of(
            ErrorCode.REVISION_CONFLICT,
            f"service definition {name!r} changed {DELETE_ATTEMPTS} times while deleting it",
            serviceName=name,
        )
