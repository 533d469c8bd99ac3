"""The `aegis-config` bucket: applications and configurations, unique names without transactions.

KV has no multi-key transactions, so uniqueness rests on *name-index keys*
taken with create-if-absent **before** the record is written:

    app-names.{name}               -> {"id": <application id>, "claimedAt": ...}
    apps.{id}                      -> the application
    config-names.{appId}.{name}    -> {"id": <configuration id>, "claimedAt": ...}
    configs.{id}                   -> the configuration

Of two racing creates of one name, exactly one creates the index key (the
server decides); the other gets 409. An index entry *holds* its name only if
the record it points to exists and still carries that name. A crash between
the two writes leaves an index entry that holds nothing (an orphan): the
name is free again for a later create once the entry is older than
`grace` seconds (younger, it may be a create still in flight, so the later
create gets 409 and may retry); the takeover is a revision-checked write, so
of two late creates one wins. `repair()` (run by the management actor at
start) deletes orphans and finishes interrupted cascades, so no name stays
blocked and no configuration outlives its application.

Deleting an application first marks its record `deleting` with a
revision-checked write (a stale revision fails there, before anything is
touched), then deletes its configurations, its record and its name index;
a record marked `deleting` reads as gone, and `repair()` completes the work
if the process died half-way. Renames take the new name's index first and
release the old one after the record is written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final

from ulid import ULID

from aegis_actors._buckets import (
    Buckets,
    application_key,
    application_name_key,
    configuration_key,
    configuration_name_key,
    configuration_names,
)
from aegis_actors._configuration.models import Application, Configuration, NameIndex
from aegis_actors._configuration.records import (
    HISTORY,
    ApplicationRecord,
    ConfigurationRecord,
    HeldName,
    Record,
    check_revision,
    claim,
    configuration_bucket_spec,
    conflict,
    dump,
    parse,
    record_of,
    release,
)
from aegis_actors._configuration.repair import RepairReport, repair
from aegis_actors._errors import ErrorCode, RevisionConflictError, ServiceError
from aegis_actors._kv import KVBucket
from aegis_actors._mirror import BucketMirror
from aegis_actors._models import WireModel, utc_now
from aegis_actors._pagination import Key, Page, fit, paginate
from aegis_actors._transport import JetStreamContext

#: An index entry younger than this may belong to a create still in flight.
DEFAULT_GRACE: Final = 10.0
#: A delete without `revision` reads again after a concurrent write, this many times.
DELETE_ATTEMPTS: Final = 5


def _by_name(item: ApplicationRecord | ConfigurationRecord | Application | Configuration) -> Key:
    return (item.name, item.id)


def _public(record: ConfigurationRecord) -> Configuration:
    """The wire form of a stored configuration (as stored: a record written by hand that
    breaks today's rules is still shown, never a 500)."""
    return Configuration.model_construct(**{name: getattr(record, name) for name in _FIELDS})


_FIELDS: Final = tuple(Configuration.model_fields)


def _json_size(item: WireModel) -> int:
    return len(item.model_dump_json(by_alias=True))


class ConfigurationStore:
    """CRUD of applications and configurations with the guarantees above."""

    def __init__(
        self,
        bucket: KVBucket,
        *,
        grace: float = DEFAULT_GRACE,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.bucket = bucket
        self.grace = grace
        self.now = now
        self._mirror: BucketMirror[Record] | None = None

    @classmethod
    async def open(
        cls, js: JetStreamContext, buckets: Buckets, *, grace: float = DEFAULT_GRACE
    ) -> ConfigurationStore:
        return cls(await KVBucket.ensure(js, configuration_bucket_spec(buckets)), grace=grace)

    # -- reading -----------------------------------------------------------------

    async def application_record(self, application_id: str) -> tuple[ApplicationRecord, int]:
        entry = await self.bucket.get(application_key(application_id))
        record = parse(ApplicationRecord, entry)
        if entry is None or record is None or record.deleting:
            raise ServiceError.of(
                ErrorCode.NOT_FOUND, f"no application {application_id}", id=application_id
            )
        return record, entry.revision

    async def _configuration_ids(self, application_id: str) -> list[str]:
        # A set: during a rename both name indexes may be seen holding the same
        # id (the old one checked before the record changed, the new one after).
        ids = set()
        for entry in await self.bucket.entries(configuration_names(application_id)):
            index = parse(NameIndex, entry)
            name = entry.key.rpartition(".")[2]
            if index is not None and await self.holds_configuration(index.id, name):
                ids.add(index.id)
        return sorted(ids)

    def _application(self, record: ApplicationRecord, ids: list[str]) -> Application:
        return Application.model_construct(  # as stored, like `_public`
            id=record.id,
            name=record.name,
            comments=record.comments,
            configuration_ids=ids,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )

    async def get_application(self, application_id: str) -> tuple[Application, int]:
        record, revision = await self.application_record(application_id)
        return self._application(record, await self._configuration_ids(record.id)), revision

    async def find_application(self, name: str) -> tuple[Application, int]:
        index = parse(NameIndex, await self.bucket.get(application_name_key(name)))
        if index is None or not await self.holds_application(index.id, name):
            raise ServiceError.of(ErrorCode.NOT_FOUND, f"no application named {name!r}", name=name)
        return await self.get_application(index.id)

    async def _records(self) -> list[Record]:
        """Every record the bucket holds, current as of this call (see `BucketMirror`)."""
        if self._mirror is None:
            self._mirror = BucketMirror(self.bucket, record_of)
        await self._mirror.refresh()
        return [record for _, record in self._mirror.items.values()]

    async def list_applications(
        self, limit: int, cursor: str | None, max_bytes: int | None = None
    ) -> Page[Application]:
        records = await self._records()
        apps = [r for r in records if isinstance(r, ApplicationRecord) and not r.deleting]
        page = paginate(apps, _by_name, limit, cursor, parts=2)
        owned: dict[str, list[str]] = {}
        for record in records:
            if isinstance(record, ConfigurationRecord):
                owned.setdefault(record.application_id, []).append(record.id)
        items = [self._application(r, sorted(owned.get(r.id, []))) for r in page.items]
        return fit(Page(items, page.next_cursor), _by_name, _json_size, max_bytes)

    async def _configuration_record(self, configuration_id: str) -> tuple[ConfigurationRecord, int]:
        entry = await self.bucket.get(configuration_key(configuration_id))
        record = parse(ConfigurationRecord, entry)
        if entry is None or record is None:
            raise ServiceError.of(
                ErrorCode.NOT_FOUND, f"no configuration {configuration_id}", id=configuration_id
            )
        return record, entry.revision

    async def get_configuration(self, configuration_id: str) -> tuple[Configuration, int]:
        record, revision = await self._configuration_record(configuration_id)
        return _public(record), revision

    async def find_configuration(self, application_id: str, name: str) -> tuple[Configuration, int]:
        entry = await self.bucket.get(configuration_name_key(application_id, name))
        index = parse(NameIndex, entry)
        if index is None or not await self.holds_configuration(index.id, name):
            raise ServiceError.of(
                ErrorCode.NOT_FOUND,
                f"application {application_id} has no configuration named {name!r}",
                applicationId=application_id,
                name=name,
            )
        return await self.get_configuration(index.id)

    async def list_configurations(
        self,
        application_id: str | None,
        limit: int,
        cursor: str | None,
        max_bytes: int | None = None,
    ) -> Page[Configuration]:
        if application_id is not None:
            await self.application_record(application_id)  # 404 if there is none
        held = await self._records()
        records = [r for r in held if isinstance(r, ConfigurationRecord)]
        if application_id is not None:
            # Its configurations: those whose name index points to them (as `get` counts them).
            names = {
                (r.application_id, r.name): r.id
                for r in held
                if isinstance(r, HeldName) and r.application_id is not None
            }
            records = [
                r
                for r in records
                if r.application_id == application_id
                and names.get((application_id, r.name)) == r.id
            ]
        page = paginate(records, _by_name, limit, cursor, parts=2)
        items = [_public(r) for r in page.items]
        return fit(Page(items, page.next_cursor), _by_name, _json_size, max_bytes)

    async def configuration_history(self, configuration_id: str) -> list[tuple[Configuration, int]]:
        """The last `HISTORY` revisions, newest first."""
        await self._configuration_record(configuration_id)
        revisions = []
        for entry in await self.bucket.history(configuration_key(configuration_id)):
            record = None if entry.deleted else parse(ConfigurationRecord, entry)
            if record is not None:
                revisions.append((_public(record), entry.revision))
        return sorted(revisions, key=lambda item: item[1], reverse=True)[:HISTORY]

    # -- name indexes ----------------------------------------------------------------

    async def holds_application(self, application_id: str, name: str) -> bool:
        record = parse(ApplicationRecord, await self.bucket.get(application_key(application_id)))
        return record is not None and record.name == name and not record.deleting

    async def holds_configuration(self, configuration_id: str, name: str) -> bool:
        entry = await self.bucket.get(configuration_key(configuration_id))
        record = parse(ConfigurationRecord, entry)
        return record is not None and record.name == name

    async def _claim(
        self,
        key: str,
        owner: str,
        holds: Callable[[str], Awaitable[bool]],
        taken: Callable[[], ServiceError],
    ) -> int:
        return await claim(self.bucket, key, owner, holds, taken, now=self.now(), grace=self.grace)

    # -- applications ----------------------------------------------------------------

    async def create_application(self, name: str, comments: str) -> tuple[Application, int]:
        application_id = str(ULID())

        def taken() -> ServiceError:
            return ServiceError.of(
                ErrorCode.ALREADY_EXISTS, f"an application named {name!r} exists", name=name
            )

        await self._claim(
            application_name_key(name),
            application_id,
            lambda holder: self.holds_application(holder, name),
            taken,
        )
        now = self.now()
        record = ApplicationRecord(
            id=application_id, name=name, comments=comments, created_at=now, updated_at=now
        )
        revision = await self.bucket.create(application_key(application_id), dump(record))
        return self._application(record, []), revision

    async def update_application(
        self, application_id: str, revision: int, name: str | None, comments: str | None
    ) -> tuple[Application, int]:
        record, current = await self.application_record(application_id)
        check_revision(revision, current, application_id)
        renamed = name is not None and name != record.name
        if renamed:
            assert name is not None
            await self._claim(
                application_name_key(name),
                application_id,
                lambda holder: self.holds_application(holder, name),
                lambda: ServiceError.of(
                    ErrorCode.ALREADY_EXISTS, f"an application named {name!r} exists", name=name
                ),
            )
        updated = record.model_copy(
            update={
                "name": name if name is not None else record.name,
                "comments": comments if comments is not None else record.comments,
                "updated_at": self.now(),
            }
        )
        try:
            new_revision = await self.bucket.update(
                application_key(application_id), dump(updated), revision=revision
            )
        except RevisionConflictError:
            if renamed:
                assert name is not None
                await release(self.bucket, application_name_key(name), application_id)
            raise conflict(application_id) from None
        if renamed:
            await release(self.bucket, application_name_key(record.name), application_id)
        ids = await self._configuration_ids(application_id)
        return self._application(updated, ids), new_revision

    async def delete_application(self, application_id: str, revision: int | None) -> None:
        for _ in range(DELETE_ATTEMPTS):
            record, current = await self.application_record(application_id)
            if revision is not None:
                check_revision(revision, current, application_id)
            # The revision-checked mark is the one point where a stale delete fails.
            marked = record.model_copy(update={"deleting": True, "updated_at": self.now()})
            try:
                await self.bucket.update(
                    application_key(application_id), dump(marked), revision=current
                )
            except RevisionConflictError:
                continue  # changed meanwhile: read again (404, 409 at a given revision, or retry)
            await self.finish_delete(marked)
            return
        raise conflict(application_id)

    async def finish_delete(self, record: ApplicationRecord) -> None:
        for entry in await self.bucket.entries(configuration_names(record.id)):
            index = parse(NameIndex, entry)
            if index is not None:
                await self.bucket.delete(configuration_key(index.id))
            await self.bucket.delete(entry.key)
        await self.bucket.delete(application_key(record.id))
        await release(self.bucket, application_name_key(record.name), record.id)

    # -- configurations --------------------------------------------------------------

    async def create_configuration(
        self, application_id: str, name: str, comments: str, config: dict[str, Any]
    ) -> tuple[Configuration, int]:
        await self.application_record(application_id)
        configuration_id = str(ULID())
        index_key = configuration_name_key(application_id, name)
        await self._claim(
            index_key,
            configuration_id,
            lambda holder: self.holds_configuration(holder, name),
            lambda: ServiceError.of(
                ErrorCode.ALREADY_EXISTS,
                f"application {application_id} already has a configuration named {name!r}",
                applicationId=application_id,
                name=name,
            ),
        )
        now = self.now()
        record = ConfigurationRecord(
            id=configuration_id,
            application_id=application_id,
            name=name,
            comments=comments,
            config=config,
            created_at=now,
            updated_at=now,
        )
        revision = await self.bucket.create(configuration_key(configuration_id), dump(record))
        try:
            await self.application_record(application_id)
        except ServiceError:
            # The application was deleted while we wrote: leave nothing behind.
            await self.bucket.delete(configuration_key(configuration_id))
            await release(self.bucket, index_key, configuration_id)
            raise
        return _public(record), revision

    async def update_configuration(
        self,
        configuration_id: str,
        revision: int,
        name: str | None,
        comments: str | None,
        config: dict[str, Any] | None,
    ) -> tuple[Configuration, int]:
        record, current = await self._configuration_record(configuration_id)
        check_revision(revision, current, configuration_id)
        renamed = name is not None and name != record.name
        if renamed:
            assert name is not None
            await self._claim(
                configuration_name_key(record.application_id, name),
                configuration_id,
                lambda holder: self.holds_configuration(holder, name),
                lambda: ServiceError.of(
                    ErrorCode.ALREADY_EXISTS,
                    f"application {record.application_id} already has a configuration "
                    f"named {name!r}",
                    name=name,
                ),
            )
        updated = record.model_copy(
            update={
                "name": name if name is not None else record.name,
                "comments": comments if comments is not None else record.comments,
                "config": config if config is not None else record.config,
                "updated_at": self.now(),
            }
        )
        try:
            new_revision = await self.bucket.update(
                configuration_key(configuration_id), dump(updated), revision=revision
            )
        except RevisionConflictError:
            if renamed:
                assert name is not None
                await release(
                    self.bucket,
                    configuration_name_key(record.application_id, name),
                    configuration_id,
                )
            raise conflict(configuration_id) from None
        if renamed:
            await release(
                self.bucket,
                configuration_name_key(record.application_id, record.name),
                configuration_id,
            )
        return _public(updated), new_revision

    async def delete_configuration(self, configuration_id: str, revision: int | None) -> None:
        for _ in range(DELETE_ATTEMPTS):
            record, current = await self._configuration_record(configuration_id)
            if revision is not None:
                check_revision(revision, current, configuration_id)
            try:
                # Revision-checked even without `revision`: a delete racing
                # another delete is a 404 when it reads again, not a second 204.
                await self.bucket.delete(configuration_key(configuration_id), revision=current)
            except RevisionConflictError:
                continue  # changed meanwhile: read again (404, 409 at a given revision, or retry)
            await release(
                self.bucket,
                configuration_name_key(record.application_id, record.name),
                configuration_id,
            )
            return
        raise conflict(configuration_id)

    # -- repair ----------------------------------------------------------------------

    async def repair(self) -> RepairReport:
        """Finish interrupted deletes; drop orphan indexes and configurations (see `repair`)."""
        return await repair(self)

    def is_old(self, when: datetime) -> bool:
        return (self.now() - when).total_seconds() >= self.grace
