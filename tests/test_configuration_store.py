"""The aegis-config store: CRUD, unique names under races, crashes repaired, cascades."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio
import pytest
from nats.aio.client import Client

from aegis_actors import ServiceError
from aegis_actors._buckets import Buckets, application_name_key, configuration_name_key
from aegis_actors._configuration.models import NameIndex
from aegis_actors._configuration.records import HISTORY
from aegis_actors._configuration.store import ConfigurationStore
from aegis_actors._models import utc_now

pytestmark = pytest.mark.nats


@pytest.fixture
async def store(nats_client: Client, namespace: str) -> ConfigurationStore:
    return await ConfigurationStore.open(nats_client.jetstream(), Buckets(namespace), grace=5.0)


def code_of(info: pytest.ExceptionInfo[ServiceError]) -> tuple[int, str]:
    return info.value.status, info.value.code


async def plant_index(store: ConfigurationStore, key: str, owner: str, age: float) -> None:
    """What a crash between the index write and the record write leaves behind."""
    index = NameIndex(id=owner, claimed_at=utc_now() - timedelta(seconds=age))
    await store.bucket.put(key, index.model_dump_json(by_alias=True).encode())


class TestApplications:
    """Create, read, list, update and delete, with ULIDs and server timestamps."""

    async def test_round_trip(self, store: ConfigurationStore) -> None:
        app, revision = await store.create_application("billing", "the billing app")
        assert len(app.id) == 26
        assert app.created_at == app.updated_at
        assert app.configuration_ids == []
        got, got_revision = await store.get_application(app.id)
        assert (got, got_revision) == (app, revision)
        assert (await store.find_application("billing"))[0].id == app.id
        updated, new_revision = await store.update_application(app.id, revision, None, "new")
        assert updated.comments == "new"
        assert updated.updated_at > app.updated_at
        assert new_revision > revision
        await store.delete_application(app.id, new_revision)
        with pytest.raises(ServiceError) as info:
            await store.get_application(app.id)
        assert code_of(info) == (404, "NOT_FOUND")

    async def test_names_are_unique(self, store: ConfigurationStore) -> None:
        await store.create_application("billing", "")
        with pytest.raises(ServiceError) as info:
            await store.create_application("billing", "again")
        assert code_of(info) == (409, "ALREADY_EXISTS")

    async def test_exactly_one_of_many_racing_creates_wins(self, store: ConfigurationStore) -> None:
        outcomes: list[Any] = []

        async def create(i: int) -> None:
            try:
                outcomes.append((await store.create_application("contested", str(i)))[0])
            except ServiceError as exc:
                outcomes.append(exc.code)

        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(create, i)
        winners = [o for o in outcomes if not isinstance(o, str)]
        assert len(winners) == 1
        assert outcomes.count("ALREADY_EXISTS") == 29
        page = await store.list_applications(100, None)
        assert [a.id for a in page.items] == [winners[0].id]

    async def test_rename_frees_the_old_name_and_refuses_a_taken_one(
        self, store: ConfigurationStore
    ) -> None:
        app, revision = await store.create_application("old-name", "")
        await store.create_application("taken", "")
        with pytest.raises(ServiceError) as info:
            await store.update_application(app.id, revision, "taken", None)
        assert code_of(info) == (409, "ALREADY_EXISTS")
        assert (await store.get_application(app.id))[0].name == "old-name"
        renamed, _ = await store.update_application(app.id, revision, "new-name", None)
        assert renamed.name == "new-name"
        again, _ = await store.create_application("old-name", "")
        assert again.id != app.id

    async def test_stale_revisions_are_refused_and_change_nothing(
        self, store: ConfigurationStore
    ) -> None:
        app, revision = await store.create_application("billing", "")
        config, _ = await store.create_configuration(app.id, "db", "", {"url": "x"})
        await store.update_application(app.id, revision, None, "first")
        for attempt in (
            store.update_application(app.id, revision, None, "second"),
            store.delete_application(app.id, revision),
        ):
            with pytest.raises(ServiceError) as info:
                await attempt
            assert code_of(info) == (409, "REVISION_CONFLICT")
        current, _ = await store.get_application(app.id)
        assert current.comments == "first"
        assert current.configuration_ids == [config.id]

    async def test_list_is_sorted_by_name_and_paged(self, store: ConfigurationStore) -> None:
        names = [f"app-{i:02d}" for i in range(25)]
        for name in reversed(names):
            await store.create_application(name, "")
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = await store.list_applications(10, cursor)
            seen += [a.name for a in page.items]
            pages += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == names
        assert pages == 3

    async def test_a_forged_cursor_is_refused(self, store: ConfigurationStore) -> None:
        with pytest.raises(ServiceError) as info:
            await store.list_applications(10, "!!nonsense!!")
        assert code_of(info) == (422, "VALIDATION_ERROR")


class TestConfigurations:
    """Configurations belong to one application; names are unique within it."""

    async def test_round_trip_and_listing_under_the_application(
        self, store: ConfigurationStore
    ) -> None:
        app, _ = await store.create_application("billing", "")
        config, revision = await store.create_configuration(app.id, "db", "c", {"pool": 5})
        assert config.application_id == app.id
        assert (await store.get_configuration(config.id))[0] == config
        assert (await store.find_configuration(app.id, "db"))[0].id == config.id
        assert (await store.get_application(app.id))[0].configuration_ids == [config.id]
        updated, _ = await store.update_configuration(config.id, revision, None, None, {"pool": 9})
        assert updated.config == {"pool": 9}
        page = await store.list_configurations(app.id, 10, None)
        assert [c.id for c in page.items] == [config.id]

    async def test_names_are_unique_within_an_application_only(
        self, store: ConfigurationStore
    ) -> None:
        first, _ = await store.create_application("first", "")
        second, _ = await store.create_application("second", "")
        await store.create_configuration(first.id, "db", "", {})
        await store.create_configuration(second.id, "db", "", {})
        with pytest.raises(ServiceError) as info:
            await store.create_configuration(first.id, "db", "", {})
        assert code_of(info) == (409, "ALREADY_EXISTS")

    async def test_in_a_missing_application_is_404(self, store: ConfigurationStore) -> None:
        with pytest.raises(ServiceError) as info:
            await store.create_configuration("01M83XVDVEFQP5XDGJGBVK8SV6", "db", "", {})
        assert code_of(info) == (404, "NOT_FOUND")

    async def test_history_keeps_the_last_ten_newest_first(self, store: ConfigurationStore) -> None:
        app, _ = await store.create_application("billing", "")
        config, revision = await store.create_configuration(app.id, "db", "", {"v": 0})
        for v in range(1, 13):
            _, revision = await store.update_configuration(
                config.id, revision, None, None, {"v": v}
            )
        history = await store.configuration_history(config.id)
        assert len(history) == HISTORY
        assert [c.config["v"] for c, _ in history] == list(range(12, 2, -1))
        assert [r for _, r in history] == sorted((r for _, r in history), reverse=True)

    async def test_deleting_an_application_deletes_its_configurations(
        self, store: ConfigurationStore
    ) -> None:
        app, revision = await store.create_application("billing", "")
        configs = [(await store.create_configuration(app.id, f"c{i}", "", {}))[0] for i in range(3)]
        await store.delete_application(app.id, revision)
        for config in configs:
            with pytest.raises(ServiceError):
                await store.get_configuration(config.id)
        assert (await store.list_configurations(None, 10, None)).items == []
        again, _ = await store.create_application("billing", "")
        await store.create_configuration(again.id, "c0", "", {})


class TestCrashes:
    """A crash between the index write and the record write leaves no name blocked."""

    async def test_a_young_orphan_index_still_blocks_a_create(
        self, store: ConfigurationStore
    ) -> None:
        await plant_index(store, application_name_key("ghost"), "01M83XVDVEFQP5XDGJGBVK8SV6", 0)
        with pytest.raises(ServiceError) as info:
            await store.create_application("ghost", "")
        assert code_of(info) == (409, "ALREADY_EXISTS")

    async def test_an_old_orphan_index_is_taken_over_by_a_later_create(
        self, store: ConfigurationStore
    ) -> None:
        await plant_index(store, application_name_key("ghost"), "01M83XVDVEFQP5XDGJGBVK8SV6", 60)
        app, _ = await store.create_application("ghost", "")
        assert (await store.find_application("ghost"))[0].id == app.id

    async def test_repair_removes_orphans_and_finishes_deletes(
        self, store: ConfigurationStore
    ) -> None:
        app, revision = await store.create_application("billing", "")
        config, _ = await store.create_configuration(app.id, "db", "", {})
        await plant_index(store, application_name_key("ghost"), "01M83XVDVEFQP5XDGJGBVK8SV6", 60)
        await plant_index(
            store, configuration_name_key(app.id, "gone"), "01M83XVDVEFQP5XDGJGBVK8SV7", 60
        )
        # A delete that died after marking the record.
        record, current = await store.application_record(app.id)
        marked = record.model_copy(
            update={"deleting": True, "updated_at": utc_now() - timedelta(seconds=60)}
        )
        await store.bucket.update(
            f"apps.{app.id}", marked.model_dump_json(by_alias=True).encode(), revision=current
        )
        report = await store.repair()
        assert report.unfinished_deletes == 1
        assert report.orphan_names >= 1
        with pytest.raises(ServiceError):
            await store.get_configuration(config.id)
        assert (await store.bucket.entries(">")) == []
        del revision


class TestListsFromTheMirror:
    """Lists read the bucket once, then only what changed; each record once, current."""

    async def test_pages_and_later_writes_need_no_second_read_of_the_bucket(
        self, store: ConfigurationStore
    ) -> None:
        apps = [(await store.create_application(f"app-{i}", ""))[0] for i in range(5)]
        names, cursor = [], None
        while True:
            page = await store.list_applications(2, cursor)
            names += [a.name for a in page.items]
            if (cursor := page.next_cursor) is None:
                break
        assert names == [f"app-{i}" for i in range(5)]
        await store.create_application("app-9", "")
        await store.delete_application(apps[0].id, None)
        renamed, revision = await store.get_application(apps[1].id)
        await store.update_application(renamed.id, revision, "app-1b", None)
        listed = [a.name for a in (await store.list_applications(100, None)).items]
        assert listed == ["app-1b", "app-2", "app-3", "app-4", "app-9"]
        assert store._mirror is not None
        assert store._mirror.reloads == 1, "caught up revision by revision"

    async def test_an_applications_list_names_only_what_its_name_indexes_hold(
        self, store: ConfigurationStore
    ) -> None:
        app, _ = await store.create_application("billing", "")
        db, _ = await store.create_configuration(app.id, "db", "", {"pool": 5})
        cache, _ = await store.create_configuration(app.id, "cache", "", {})
        # The index of "cache" taken over by another id (a record that lost its name).
        await plant_index(store, configuration_name_key(app.id, "cache"), db.id, age=0)
        page = await store.list_configurations(app.id, 10, None)
        assert [c.id for c in page.items] == [db.id]
        everything = await store.list_configurations(None, 10, None)
        assert sorted(c.id for c in everything.items) == sorted([db.id, cache.id])
