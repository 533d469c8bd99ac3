"""What the `aegis-config` bucket holds, and the helpers every store operation shares.

The name indexes (`app-names.{name}`, `config-names.{appId}.{name}`) make
names unique without transactions; how, is in `store`'s docstring. `claim`
takes one, `release` gives it back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final, NamedTuple, TypeVar

from pydantic import BaseModel, ValidationError

from aegis_actors._buckets import (
    Buckets,
    application_key,
    application_name_key,
    configuration_key,
    configuration_name_key,
)
from aegis_actors._configuration.models import NameIndex
from aegis_actors._errors import ErrorCode, KeyExistsError, RevisionConflictError, ServiceError
from aegis_actors._kv import BucketSpec, Entry, KVBucket
from aegis_actors._models import Timestamp, WireModel

#: Revisions kept per key: `history` returns the last 10 of a configuration.
HISTORY: Final = 10

M = TypeVar("M", bound=BaseModel)


def configuration_bucket_spec(buckets: Buckets) -> BucketSpec:
    return BucketSpec(
        name=buckets.configuration,
        description="aegis: applications and configurations (never expire)",
        history=HISTORY,
    )


class ApplicationRecord(WireModel):
    """An application as the bucket keeps it (`deleting` while a delete cascades)."""

    id: str
    name: str
    comments: str
    created_at: Timestamp
    updated_at: Timestamp
    deleting: bool = False


class ConfigurationRecord(WireModel):
    """A configuration as the bucket keeps it."""

    id: str
    application_id: str
    name: str
    comments: str
    config: dict[str, Any]
    created_at: Timestamp
    updated_at: Timestamp


def parse(model: type[M], entry: Entry | None) -> M | None:
    """The record in `entry`, or None (no entry, or not a record of that model)."""
    if entry is None:
        return None
    try:
        return model.model_validate_json(entry.value)
    except ValidationError:
        return None


class HeldName(NamedTuple):
    """A name-index entry: `name` (of `application_id`'s configurations, or an application's)
    is claimed by record `id`."""

    application_id: str | None
    name: str
    id: str


Record = ApplicationRecord | ConfigurationRecord | HeldName

_APPLICATION: Final = application_key("")
_CONFIGURATION: Final = configuration_key("")
_APPLICATION_NAME: Final = application_name_key("")
_CONFIGURATION_NAME: Final = configuration_name_key("", "")[:-1]  # "config-names."


def record_of(entry: Entry) -> Record | None:
    """What an entry of the bucket holds, by its key (None: nothing readable)."""
    key = entry.key
    if key.startswith(_APPLICATION):
        return parse(ApplicationRecord, entry)
    if key.startswith(_CONFIGURATION):
        return parse(ConfigurationRecord, entry)
    index = parse(NameIndex, entry)
    if index is None:
        return None
    if key.startswith(_CONFIGURATION_NAME):
        application_id, _, name = key[len(_CONFIGURATION_NAME) :].partition(".")
        return HeldName(application_id, name, index.id)
    if key.startswith(_APPLICATION_NAME):
        return HeldName(None, key[len(_APPLICATION_NAME) :], index.id)
    return None


async def claim(
    bucket: KVBucket,
    key: str,
    owner: str,
    holds: Callable[[str], Awaitable[bool]],
    taken: Callable[[], ServiceError],
    *,
    now: datetime,
    grace: float,
) -> int:
    """Take the name-index `key` for `owner`, or raise `taken()` (409).

    An index held by a record that no longer carries the name (an orphan)
    is taken over once it is older than `grace` seconds.
    """
    value = NameIndex(id=owner, claimed_at=now).model_dump_json(by_alias=True).encode()
    for _ in range(2):  # once more if the holder vanished between our reads
        try:
            return await bucket.create(key, value)
        except KeyExistsError:
            entry = await bucket.get(key)
        if entry is None:
            continue
        index = parse(NameIndex, entry)
        if index is not None and index.id == owner:
            return entry.revision
        if index is not None and await holds(index.id):
            raise taken()
        age = (now - index.claimed_at).total_seconds() if index else grace
        if age < grace:
            raise taken()  # maybe a create still in flight; it will win or be repaired
        try:
            return await bucket.update(key, value, revision=entry.revision)
        except RevisionConflictError:
            raise taken() from None
    raise taken()


async def release(bucket: KVBucket, key: str, owner: str) -> None:
    """Delete the name-index `key` if it still points to `owner`."""
    entry = await bucket.get(key)
    index = parse(NameIndex, entry)
    if entry is not None and index is not None and index.id == owner:
        # A conflict means someone took it meanwhile: it is theirs now.
        with contextlib.suppress(RevisionConflictError):
            await bucket.delete(key, revision=entry.revision)


def dump(model: BaseModel) -> bytes:
    return model.model_dump_json(by_alias=True).encode()


def conflict(ident: str) -> ServiceError:
    return ServiceError.of(
        ErrorCode.REVISION_CONFLICT,
        f"{ident} changed since the revision you read; read it again",
        id=ident,
    )


def check_revision(given: int, current: int, ident: str) -> None:
    if given != current:
        raise ServiceError.of(
            ErrorCode.REVISION_CONFLICT,
            f"{ident} is at revision {current}, not {given}; read it again",
            id=ident,
            revision=given,
            currentRevision=current,
        )
