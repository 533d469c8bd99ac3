"""Repairing the `aegis-config` bucket after a crash: what `ConfigurationStore.repair` does.

A create cut short between its two writes leaves an orphan name index; a
delete cut short leaves an application marked `deleting`, or configurations
whose application is gone. The management service repairs at start, so no
name stays blocked and no configuration outlives its application.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from aegis_actors._buckets import (
    APPLICATION_NAMES,
    APPLICATIONS,
    CONFIGURATIONS,
    configuration_names,
)
from aegis_actors._configuration.models import NameIndex
from aegis_actors._configuration.records import ApplicationRecord, ConfigurationRecord, parse
from aegis_actors._errors import RevisionConflictError, ServiceError
from aegis_actors._kv import KVBucket


class Store(Protocol):
    """What a repair uses of a `ConfigurationStore`."""

    bucket: KVBucket

    async def application_record(self, application_id: str) -> tuple[ApplicationRecord, int]: ...
    async def finish_delete(self, record: ApplicationRecord) -> None: ...
    async def holds_application(self, application_id: str, name: str) -> bool: ...
    async def holds_configuration(self, configuration_id: str, name: str) -> bool: ...
    def is_old(self, when: datetime) -> bool: ...


@dataclass(frozen=True, slots=True)
class RepairReport:
    orphan_names: int
    unfinished_deletes: int
    orphan_configurations: int


async def repair(store: Store) -> RepairReport:
    """Finish interrupted deletes; drop orphan indexes and configurations.

    Only entries older than `grace` count as orphans, so a repair never
    undoes a create in flight.
    """
    unfinished = 0
    for entry in await store.bucket.entries(APPLICATIONS):
        record = parse(ApplicationRecord, entry)
        if record is not None and record.deleting and store.is_old(record.updated_at):
            await store.finish_delete(record)
            unfinished += 1
    orphan_names = 0
    for pattern, holds in (
        (APPLICATION_NAMES, store.holds_application),
        (configuration_names(), store.holds_configuration),
    ):
        for entry in await store.bucket.entries(pattern):
            index = parse(NameIndex, entry)
            name = entry.key.rpartition(".")[2]
            if index is None or (
                store.is_old(index.claimed_at) and not await holds(index.id, name)
            ):
                try:
                    await store.bucket.delete(entry.key, revision=entry.revision)
                    orphan_names += 1
                except RevisionConflictError:
                    pass
    orphan_configurations = 0
    for entry in await store.bucket.entries(CONFIGURATIONS):
        config = parse(ConfigurationRecord, entry)
        if config is None or not store.is_old(config.updated_at):
            continue
        try:
            await store.application_record(config.application_id)
        except ServiceError:
            # A conflict: another instance's repair (or a write) got there first.
            with contextlib.suppress(RevisionConflictError):
                await store.bucket.delete(entry.key, revision=entry.revision)
                orphan_configurations += 1
    return RepairReport(orphan_names, unfinished, orphan_configurations)
