"""`aegis.mgmt.apps.*` and `aegis.mgmt.configs.*` over real NATS: replies and the rules.

The store's own guarantees (orphan repair, grace periods) are tested in
`test_configuration_store.py`, bad input in `test_mgmt_configs_input.py`;
here every verb is driven as a client drives it, through the management
actor: replies, status codes, races between instances, cascades, history.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import anyio
import nats.micro.service as micro
import pytest
from nats.aio.client import Client
from ulid import ULID

from aegis_actors import (
    ConnectionSettings,
    InstanceSettings,
    NatsServer,
    ServiceError,
    Subjects,
    connect,
)
from aegis_actors._buckets import Buckets, configuration_key
from aegis_actors._configuration.models import MAX_CONFIG_BYTES
from aegis_actors._configuration.records import HISTORY
from aegis_actors._configuration.store import ConfigurationStore
from aegis_actors._models import format_timestamp, utc_now
from tests.configs_support import (
    NOBODY,
    VERBS,
    error_of,
    management,
    parse_time,
    value_of_size,
)

pytestmark = pytest.mark.nats


@pytest.fixture
def mgmt_settings(instance_settings: InstanceSettings) -> InstanceSettings:
    """No registration: these tests need no heartbeats, and start faster without."""
    return instance_settings.model_copy(update={"registration": False})


class TestApplications:
    """create 201, get 200 by id or name with its configuration ids, update 200, delete 204."""

    async def test_create_answers_201_with_a_ulid_server_timestamps_and_the_revision(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            reply = await api.call("apps", "create", {"name": "billing", "comments": "pays"})
            other = await api.call("apps", "create", {"name": "shipping"})
        assert reply["status"] == 201
        assert reply["revision"] >= 1
        data = reply["data"]
        assert str(ULID.from_str(data["id"])) == data["id"]
        assert other["data"]["id"] != data["id"]
        assert {k: data[k] for k in ("name", "comments", "configurationIds")} == {
            "name": "billing",
            "comments": "pays",
            "configurationIds": [],
        }
        assert data["createdAt"] == data["updatedAt"]
        parse_time(data["createdAt"])
        assert other["data"]["comments"] == "", "comments are optional"

    async def test_get_by_id_and_by_name_gives_the_same_reply_with_configuration_ids(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            app = await api.app("billing")
            ids = [(await api.config(app["id"], n, {"n": n}))["data"]["id"] for n in "bca"]
            by_id = await api.call("apps", "get", {"id": app["id"]})
            by_name = await api.call("apps", "get", {"name": "billing"})
        assert by_id["status"] == 200
        assert by_id == by_name
        assert by_id["data"]["configurationIds"] == sorted(ids)
        assert by_id["revision"] >= 1

    async def test_a_taken_name_is_a_409_already_exists_and_the_first_is_kept(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            first = await api.app("billing", "first")
            reply = await api.call("apps", "create", {"name": "billing", "comments": "second"})
            kept = await api.ok("apps", "get", {"name": "billing"})
        assert error_of(reply) == (409, "ALREADY_EXISTS")
        assert reply["error"]["details"] == {"name": "billing"}
        assert kept["data"]["id"] == first["id"]
        assert kept["data"]["comments"] == "first"

    async def test_list_is_sorted_by_name_and_the_cursor_walks_every_page(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        names = [f"app-{i:02d}" for i in range(7)]
        async with management(nats_client, mgmt_settings) as api:
            async with anyio.create_task_group() as tg:
                for name in reversed(names):
                    tg.start_soon(api.app, name)
            seen: list[str] = []
            params: dict[str, Any] = {"limit": 3}
            pages = 0
            while True:
                reply = await api.ok("apps", "list", params)
                assert reply["status"] == 200
                assert "revision" not in reply, "a list has no top-level revision"
                assert len(reply["data"]["items"]) <= 3
                seen += [item["name"] for item in reply["data"]["items"]]
                pages += 1
                if reply["data"]["nextCursor"] is None:
                    break
                params["cursor"] = reply["data"]["nextCursor"]
            everything = await api.ok("apps", "list", {})
        assert seen == names
        assert pages == 3
        assert [i["name"] for i in everything["data"]["items"]] == names
        assert everything["data"]["nextCursor"] is None

    async def test_update_renames_frees_the_old_name_and_moves_the_revision(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            created = await api.ok("apps", "create", {"name": "old-name", "comments": "c"})
            app_id = created["data"]["id"]
            update = {"id": app_id, "revision": created["revision"], "name": "new-name"}
            reply = await api.call("apps", "update", update)
            old = await api.call("apps", "get", {"name": "old-name"})
            new = await api.ok("apps", "get", {"name": "new-name"})
            again = await api.call("apps", "create", {"name": "old-name"})
        assert reply["status"] == 200
        assert reply["revision"] > created["revision"]
        assert reply["data"] == {
            **created["data"],
            "name": "new-name",
            "updatedAt": reply["data"]["updatedAt"],
        }
        assert parse_time(reply["data"]["updatedAt"]) >= parse_time(created["data"]["updatedAt"])
        assert error_of(old) == (404, "NOT_FOUND")
        assert (new["data"]["id"], new["revision"]) == (app_id, reply["revision"])
        assert again["status"] == 201
        assert again["data"]["id"] != app_id

    async def test_renaming_onto_a_taken_name_is_a_409_and_changes_nothing(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            mine = await api.ok("apps", "create", {"name": "mine"})
            await api.app("taken")
            update = {"id": mine["data"]["id"], "revision": mine["revision"], "name": "taken"}
            reply = await api.call("apps", "update", update)
            kept = await api.ok("apps", "get", {"id": mine["data"]["id"]})
        assert error_of(reply) == (409, "ALREADY_EXISTS")
        assert kept == {**mine, "status": 200}

    async def test_a_stale_revision_is_a_409_for_update_and_delete(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            created = await api.ok("apps", "create", {"name": "billing"})
            app_id, stale = created["data"]["id"], created["revision"]
            done = await api.ok(
                "apps", "update", {"id": app_id, "revision": stale, "comments": "1"}
            )
            update = await api.call(
                "apps", "update", {"id": app_id, "revision": stale, "comments": "2"}
            )
            delete = await api.call("apps", "delete", {"id": app_id, "revision": stale})
            current = await api.ok("apps", "get", {"id": app_id})
        assert error_of(update) == (409, "REVISION_CONFLICT")
        assert update["error"]["details"] == {
            "id": app_id,
            "revision": stale,
            "currentRevision": done["revision"],
        }
        assert error_of(delete) == (409, "REVISION_CONFLICT")
        assert current["data"]["comments"] == "1"
        assert current["revision"] == done["revision"]

    async def test_an_unknown_id_or_name_is_a_404_for_every_verb(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            replies = [
                await api.call("apps", "get", {"id": NOBODY}),
                await api.call("apps", "get", {"name": "nobody"}),
                await api.call("apps", "update", {"id": NOBODY, "revision": 1, "comments": "x"}),
                await api.call("apps", "delete", {"id": NOBODY}),
            ]
        for reply in replies:
            assert error_of(reply) == (404, "NOT_FOUND")

    async def test_delete_answers_204_and_a_second_delete_is_a_404(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            created = await api.ok("apps", "create", {"name": "billing"})
            app_id = created["data"]["id"]
            reply = await api.call(
                "apps", "delete", {"id": app_id, "revision": created["revision"]}
            )
            again = await api.call("apps", "delete", {"id": app_id})
            by_name = await api.call("apps", "get", {"name": "billing"})
            listed = await api.ok("apps", "list", {})
        assert reply == {"ok": True, "status": 204, "data": None}
        assert error_of(again) == (404, "NOT_FOUND")
        assert error_of(by_name) == (404, "NOT_FOUND")
        assert listed["data"]["items"] == []


class TestConfigurations:
    """Configurations live in one application; names are unique within it."""

    async def test_create_answers_201_and_get_by_id_or_by_name_returns_it(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        value = {"pool": {"size": 5}, "hosts": ["a", "b"], "ratio": 0.5, "on": True, "x": None}
        async with management(nats_client, mgmt_settings) as api:
            app = await api.app("billing")
            params = {"applicationId": app["id"], "name": "Db_main-1", "config": value}
            created = await api.call("configs", "create", {**params, "comments": "the db"})
            by_id = await api.call("configs", "get", {"id": created["data"]["id"]})
            by_name = await api.call(
                "configs", "get", {"applicationId": app["id"], "name": "Db_main-1"}
            )
        assert created["status"] == 201
        assert created["revision"] >= 1
        data = created["data"]
        assert str(ULID.from_str(data["id"])) == data["id"]
        assert data["applicationId"] == app["id"]
        assert (data["name"], data["comments"], data["config"]) == ("Db_main-1", "the db", value)
        assert data["createdAt"] == data["updatedAt"]
        assert by_id == {**created, "status": 200}
        assert by_name == by_id

    async def test_create_in_an_unknown_application_is_a_404_and_writes_nothing(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            params = {"applicationId": NOBODY, "name": "db", "config": {}}
            reply = await api.call("configs", "create", params)
            listed = await api.ok("configs", "list", {})
        assert error_of(reply) == (404, "NOT_FOUND")
        assert listed["data"]["items"] == []

    async def test_names_are_unique_within_an_application_only(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            first, second = await api.app("first"), await api.app("second")
            await api.config(first["id"], "db", {"v": 1})
            taken = await api.call(
                "configs", "create", {"applicationId": first["id"], "name": "db", "config": {}}
            )
            elsewhere = await api.call(
                "configs", "create", {"applicationId": second["id"], "name": "db", "config": {}}
            )
            kept = await api.ok("configs", "get", {"applicationId": first["id"], "name": "db"})
        assert error_of(taken) == (409, "ALREADY_EXISTS")
        assert elsewhere["status"] == 201
        assert kept["data"]["config"] == {"v": 1}

    async def test_list_of_one_application_or_of_all_is_sorted_by_name_and_paged(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            one, two = await api.app("one"), await api.app("two")
            for name in ("e", "c", "a"):
                await api.config(one["id"], name, {})
            for name in ("d", "b"):
                await api.config(two["id"], name, {})
            mine = await api.ok("configs", "list", {"applicationId": one["id"]})
            first = await api.ok("configs", "list", {"limit": 2})
            rest = await api.ok(
                "configs", "list", {"limit": 5, "cursor": first["data"]["nextCursor"]}
            )
            unknown = await api.call("configs", "list", {"applicationId": NOBODY})
        assert [c["name"] for c in mine["data"]["items"]] == ["a", "c", "e"]
        assert {c["applicationId"] for c in mine["data"]["items"]} == {one["id"]}
        assert mine["data"]["nextCursor"] is None
        assert [c["name"] for c in first["data"]["items"]] == ["a", "b"]
        assert [c["name"] for c in rest["data"]["items"]] == ["c", "d", "e"]
        assert rest["data"]["nextCursor"] is None
        assert error_of(unknown) == (404, "NOT_FOUND")

    async def test_update_changes_only_what_it_sends_and_a_stale_revision_is_a_409(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            app = await api.app("billing")
            created = await api.config(app["id"], "db", {"pool": 5})
            config_id, stale = created["data"]["id"], created["revision"]
            update = {"id": config_id, "revision": stale, "config": {"pool": 9}}
            done = await api.call("configs", "update", update)
            late = await api.call("configs", "update", {**update, "config": {"pool": 1}})
            current = await api.ok("configs", "get", {"id": config_id})
        assert done["status"] == 200
        assert done["revision"] > stale
        assert done["data"] == {
            **created["data"],
            "config": {"pool": 9},
            "updatedAt": done["data"]["updatedAt"],
        }
        assert error_of(late) == (409, "REVISION_CONFLICT")
        assert late["error"]["details"]["currentRevision"] == done["revision"]
        assert current == {**done, "status": 200}

    async def test_a_rename_frees_the_old_name_and_refuses_a_taken_one(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            app = await api.app("billing")
            db = await api.config(app["id"], "db", {})
            await api.config(app["id"], "cache", {})
            base = {"id": db["data"]["id"], "revision": db["revision"]}
            taken = await api.call("configs", "update", {**base, "name": "cache"})
            renamed = await api.call("configs", "update", {**base, "name": "database"})
            old = await api.call("configs", "get", {"applicationId": app["id"], "name": "db"})
            again = await api.call(
                "configs", "create", {"applicationId": app["id"], "name": "db", "config": {}}
            )
        assert error_of(taken) == (409, "ALREADY_EXISTS")
        assert renamed["data"]["name"] == "database"
        assert error_of(old) == (404, "NOT_FOUND")
        assert again["status"] == 201

    async def test_delete_answers_204_frees_the_name_and_leaves_the_application(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            app = await api.app("billing")
            created = await api.config(app["id"], "db", {})
            config_id = created["data"]["id"]
            stale = await api.call("configs", "delete", {"id": config_id, "revision": 10**6})
            reply = await api.call(
                "configs", "delete", {"id": config_id, "revision": created["revision"]}
            )
            gone = [
                await api.call("configs", verb, {"id": config_id})
                for verb in ("get", "delete", "history")
            ]
            owner = await api.ok("apps", "get", {"id": app["id"]})
            again = await api.call(
                "configs", "create", {"applicationId": app["id"], "name": "db", "config": {}}
            )
        assert error_of(stale) == (409, "REVISION_CONFLICT")
        assert reply == {"ok": True, "status": 204, "data": None}
        for reply in gone:
            assert error_of(reply) == (404, "NOT_FOUND")
        assert owner["data"]["configurationIds"] == []
        assert again["status"] == 201

    async def test_update_of_an_unknown_configuration_is_a_404(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            reply = await api.call(
                "configs", "update", {"id": NOBODY, "revision": 1, "config": {"a": 1}}
            )
            by_name = await api.call("configs", "get", {"applicationId": NOBODY, "name": "db"})
        assert error_of(reply) == (404, "NOT_FOUND")
        assert error_of(by_name) == (404, "NOT_FOUND")

    async def test_a_config_of_exactly_64_kib_is_taken_and_one_byte_more_is_a_422(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            app = await api.app("billing")
            fits = await api.call(
                "configs",
                "create",
                {
                    "applicationId": app["id"],
                    "name": "big",
                    "config": value_of_size(MAX_CONFIG_BYTES),
                },
            )
            # Indented, the same value is a bigger request: still taken.
            indented = json.dumps(
                {
                    "id": fits["data"]["id"],
                    "revision": fits["revision"],
                    "config": fits["data"]["config"],
                },
                indent=8,
            ).encode()
            update, _ = await api.raw("configs", "update", indented)
            over = await api.call(
                "configs",
                "create",
                {
                    "applicationId": app["id"],
                    "name": "bigger",
                    "config": value_of_size(MAX_CONFIG_BYTES + 1),
                },
            )
        assert fits["status"] == 201
        assert update["status"] == 200
        assert error_of(over) == (422, "VALIDATION_ERROR")
        assert over["error"]["details"]["field"] == "config"
        assert "65537 bytes" in over["error"]["message"]
        assert len(json.dumps(over)) < 2000, "the huge value is not echoed back"

    async def test_list_pages_fit_in_one_nats_message(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        # 20 configurations of 60 KiB: 1.2 MB, over the 1 MiB a message holds.
        async with management(nats_client, mgmt_settings) as api:
            app = await api.app("billing")
            value = value_of_size(60 * 1024)
            async with anyio.create_task_group() as tg:
                for i in range(20):
                    tg.start_soon(api.config, app["id"], f"c{i:02d}", value)
            names: list[str] = []
            params: dict[str, Any] = {"applicationId": app["id"]}
            pages = 0
            while True:
                msg = await nats_client.request(
                    api.subjects.mgmt("configs", "list"), json.dumps(params).encode(), timeout=10
                )
                assert len(msg.data) <= nats_client.max_payload
                page = json.loads(msg.data)["data"]
                names += [c["name"] for c in page["items"]]
                pages += 1
                if page["nextCursor"] is None:
                    break
                params["cursor"] = page["nextCursor"]
        assert names == [f"c{i:02d}" for i in range(20)]
        assert pages == 2


class TestHistory:
    """history: the last 10 revisions of a configuration, newest first."""

    async def test_after_12_updates_history_holds_the_last_10_newest_first(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            app = await api.app("billing")
            created = await api.config(app["id"], "db", {"v": 0})
            config_id = created["data"]["id"]
            revisions = [created["revision"]]
            for v in range(1, 13):
                update = {"id": config_id, "revision": revisions[-1], "config": {"v": v}}
                revisions.append((await api.ok("configs", "update", update))["revision"])
            reply = await api.ok("configs", "history", {"id": config_id})
        assert reply["status"] == 200
        items = reply["data"]["items"]
        assert len(items) == HISTORY == 10
        assert [i["revision"] for i in items] == revisions[::-1][:10]
        assert [i["configuration"]["config"]["v"] for i in items] == list(range(12, 2, -1))
        assert {i["configuration"]["id"] for i in items} == {config_id}
        updated = [parse_time(i["configuration"]["updatedAt"]) for i in items]
        assert updated == sorted(updated, reverse=True)

    async def test_a_young_configuration_has_as_many_entries_as_revisions(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            app = await api.app("billing")
            created = await api.config(app["id"], "db", {"v": 0})
            update = {"id": created["data"]["id"], "revision": created["revision"], "comments": "c"}
            updated = await api.ok("configs", "update", update)
            reply = await api.ok("configs", "history", {"id": created["data"]["id"]})
        items = reply["data"]["items"]
        assert [i["revision"] for i in items] == [updated["revision"], created["revision"]]
        assert [i["configuration"]["comments"] for i in items] == ["c", ""]


class TestCascade:
    """Deleting an application deletes its configurations; their names become free."""

    async def test_deleting_an_application_deletes_its_configurations_only(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            doomed = await api.ok("apps", "create", {"name": "doomed"})
            kept = await api.app("kept")
            doomed_id = doomed["data"]["id"]
            ids = [
                (await api.config(doomed_id, n, {"n": n}))["data"]["id"] for n in ("a", "b", "c")
            ]
            survivor = await api.config(kept["id"], "a", {"n": "kept"})
            deleted = await api.call(
                "apps", "delete", {"id": doomed_id, "revision": doomed["revision"]}
            )
            gone = [await api.call("configs", "get", {"id": i}) for i in ids]
            listed = await api.ok("configs", "list", {})
            by_name = await api.call("configs", "get", {"applicationId": doomed_id, "name": "a"})
            # Both the application's name and its configurations' names are free.
            reborn = await api.app("doomed")
            again = [await api.config(reborn["id"], n, {}) for n in ("a", "b", "c")]
        assert deleted["status"] == 204
        for reply in gone:
            assert error_of(reply) == (404, "NOT_FOUND")
        assert error_of(by_name) == (404, "NOT_FOUND")
        assert [c["id"] for c in listed["data"]["items"]] == [survivor["data"]["id"]]
        assert reborn["id"] != doomed_id
        assert [r["status"] for r in again] == [201] * 3

    async def test_a_stale_delete_of_an_application_keeps_its_configurations(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            created = await api.ok("apps", "create", {"name": "billing"})
            app_id = created["data"]["id"]
            config = await api.config(app_id, "db", {})
            await api.ok(
                "apps", "update", {"id": app_id, "revision": created["revision"], "comments": "x"}
            )
            reply = await api.call(
                "apps", "delete", {"id": app_id, "revision": created["revision"]}
            )
            still = await api.call("configs", "get", {"id": config["data"]["id"]})
        assert error_of(reply) == (409, "REVISION_CONFLICT")
        assert still["status"] == 200

    async def test_creates_racing_an_application_delete_leave_no_configuration_behind(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        statuses: list[int] = []
        async with management(nats_client, mgmt_settings, count=2) as api:
            app = await api.app("billing")

            async def create(i: int) -> None:
                params = {"applicationId": app["id"], "name": f"c{i}", "config": {}}
                statuses.append((await api.call("configs", "create", params, via=i % 2))["status"])

            async def delete() -> None:
                statuses.append((await api.call("apps", "delete", {"id": app["id"]}))["status"])

            async with anyio.create_task_group() as tg:
                for i in range(30):
                    tg.start_soon(create, i)
                    if i == 10:
                        tg.start_soon(delete)
            listed = await api.ok("configs", "list", {})
            await api.still_serving()
        assert statuses.count(204) == 1
        assert set(statuses) <= {201, 204, 404}, statuses
        assert [c for c in listed["data"]["items"] if c["applicationId"] == app["id"]] == []


class TestRaces:
    """Exactly one of many racing writers wins, through one instance or two."""

    async def test_50_creates_of_one_application_name_on_two_instances_give_one_201(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        outcomes: list[tuple[int, str | None]] = []
        winners: list[str] = []
        async with management(nats_client, mgmt_settings, count=2) as api:

            async def create(i: int) -> None:
                reply = await api.call(
                    "apps", "create", {"name": "contested", "comments": str(i)}, via=i % 2
                )
                outcomes.append((reply["status"], reply.get("error", {}).get("code")))
                if reply["ok"]:
                    winners.append(reply["data"]["id"])

            async with anyio.create_task_group() as tg:
                for i in range(50):
                    tg.start_soon(create, i)
            listed = await api.ok("apps", "list", {})
            by_name = await api.ok("apps", "get", {"name": "contested"})
            await api.still_serving()
        assert outcomes.count((201, None)) == 1
        assert outcomes.count((409, "ALREADY_EXISTS")) == 49
        assert [a["id"] for a in listed["data"]["items"] if a["name"] == "contested"] == winners
        assert by_name["data"]["id"] == winners[0]

    async def test_50_creates_of_one_configuration_name_on_two_instances_give_one_201(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        outcomes: list[tuple[int, str | None]] = []
        async with management(nats_client, mgmt_settings, count=2) as api:
            app = await api.app("billing")

            async def create(i: int) -> None:
                params = {"applicationId": app["id"], "name": "db", "config": {"i": i}}
                reply = await api.call("configs", "create", params, via=i % 2)
                outcomes.append((reply["status"], reply.get("error", {}).get("code")))

            async with anyio.create_task_group() as tg:
                for i in range(50):
                    tg.start_soon(create, i)
            owner = await api.ok("apps", "get", {"id": app["id"]})
            listed = await api.ok("configs", "list", {"applicationId": app["id"]})
        assert outcomes.count((201, None)) == 1
        assert outcomes.count((409, "ALREADY_EXISTS")) == 49
        assert len(owner["data"]["configurationIds"]) == 1
        assert [c["name"] for c in listed["data"]["items"]] == ["db"]

    async def test_20_applications_renamed_to_one_name_at_once_give_one_200(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        outcomes: list[tuple[int, str | None]] = []
        async with management(nats_client, mgmt_settings, count=2) as api:
            created = [await api.ok("apps", "create", {"name": f"app-{i:02d}"}) for i in range(20)]

            async def rename(i: int) -> None:
                body = {
                    "id": created[i]["data"]["id"],
                    "revision": created[i]["revision"],
                    "name": "target",
                }
                reply = await api.call("apps", "update", body, via=i % 2)
                outcomes.append((reply["status"], reply.get("error", {}).get("code")))

            async with anyio.create_task_group() as tg:
                for i in range(20):
                    tg.start_soon(rename, i)
            listed = await api.ok("apps", "list", {})
        names = sorted(a["name"] for a in listed["data"]["items"])
        assert outcomes.count((200, None)) == 1
        assert outcomes.count((409, "ALREADY_EXISTS")) == 19
        assert names.count("target") == 1
        assert len(names) == 20, "the losers kept their names"

    async def test_20_updates_at_one_revision_give_one_200_and_one_new_history_entry(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        outcomes: list[tuple[int, str | None]] = []
        async with management(nats_client, mgmt_settings, count=2) as api:
            app = await api.app("billing")
            created = await api.config(app["id"], "db", {"v": -1})
            config_id = created["data"]["id"]

            async def update(i: int) -> None:
                body = {"id": config_id, "revision": created["revision"], "config": {"v": i}}
                reply = await api.call("configs", "update", body, via=i % 2)
                outcomes.append((reply["status"], reply.get("error", {}).get("code")))

            async with anyio.create_task_group() as tg:
                for i in range(20):
                    tg.start_soon(update, i)
            history = await api.ok("configs", "history", {"id": config_id})
        assert outcomes.count((200, None)) == 1
        assert outcomes.count((409, "REVISION_CONFLICT")) == 19
        assert len(history["data"]["items"]) == 2

    async def test_lists_racing_deletes_are_answered_with_what_is_left(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        statuses: list[int] = []
        async with management(nats_client, mgmt_settings, count=2) as api:
            app = await api.app("billing")
            created = [(await api.config(app["id"], f"c{i:02d}", {}))["data"] for i in range(30)]
            deleted = anyio.Event()

            async def delete_all() -> None:
                for i, config in enumerate(created):
                    reply = await api.call("configs", "delete", {"id": config["id"]}, via=i % 2)
                    assert reply["status"] == 204
                deleted.set()

            async def list_until_all_deleted(via: int) -> None:
                while not deleted.is_set():
                    params = {"applicationId": app["id"]}
                    statuses.append((await api.call("configs", "list", params, via=via))["status"])

            async with anyio.create_task_group() as tg:
                tg.start_soon(delete_all)
                for via in (0, 1, 0, 1):
                    tg.start_soon(list_until_all_deleted, via)
            after = await api.ok("configs", "list", {"applicationId": app["id"]})
        assert statuses, "the lists did run"
        assert set(statuses) == {200}, statuses
        assert after["data"]["items"] == []

    async def test_deletes_without_revision_win_over_updates_sent_with_them(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        """No `revision` means "whatever is there": an update landing while a delete
        runs is no conflict for it."""
        deletes: list[dict[str, Any]] = []
        updates: list[int] = []
        async with management(nats_client, mgmt_settings) as api:
            apps = [await api.ok("apps", "create", {"name": f"app-{i}"}) for i in range(10)]
            app_id = apps[0]["data"]["id"]
            configs = [await api.config(app_id, f"c{i}", {"v": 0}) for i in range(10)]

            async def update(resource: str, created: dict[str, Any]) -> None:
                change = {"config": {"v": 1}} if resource == "configs" else {"comments": "x"}
                body = {"id": created["data"]["id"], "revision": created["revision"], **change}
                updates.append((await api.call(resource, "update", body))["status"])

            async def delete(resource: str, created: dict[str, Any]) -> None:
                deletes.append(await api.call(resource, "delete", {"id": created["data"]["id"]}))

            # Sent together, each pair's handlers read the same revision; half the
            # time the update writes first and the delete's write meets a conflict.
            for resource, records in (("configs", configs), ("apps", apps[1:])):
                async with anyio.create_task_group() as tg:
                    for created in records:
                        tg.start_soon(update, resource, created)
                        tg.start_soon(delete, resource, created)
        assert [reply["status"] for reply in deletes] == [204] * 19, [
            reply for reply in deletes if not reply["ok"]
        ]
        assert set(updates) <= {200, 404, 409}, updates  # an update may lose, never a delete


class TestOutages:
    """The configuration verbs share the management service's outage handling."""

    async def test_every_verb_is_a_503_while_jetstream_is_unreachable(
        self, mgmt_settings: InstanceSettings
    ) -> None:
        app_id = "01M83XVDVEFQP5XDGJGBVK8SV6"
        bodies: dict[tuple[str, str], dict[str, Any]] = {
            ("apps", "create"): {"name": "billing"},
            ("apps", "get"): {"name": "billing"},
            ("apps", "list"): {},
            ("apps", "update"): {"id": app_id, "revision": 1, "comments": "x"},
            ("apps", "delete"): {"id": app_id},
            ("configs", "create"): {"applicationId": app_id, "name": "db", "config": {}},
            ("configs", "get"): {"id": app_id},
            ("configs", "list"): {},
            ("configs", "update"): {"id": app_id, "revision": 1, "config": {}},
            ("configs", "delete"): {"id": app_id},
            ("configs", "history"): {"id": app_id},
        }
        assert sorted(bodies) == sorted(VERBS)
        with NatsServer(extra_config="jetstream: disabled") as server:
            settings_ = mgmt_settings.model_copy(
                update={"nats": ConnectionSettings(url=server.url)}
            )
            client = await connect(settings_.nats)
            try:
                async with management(client, settings_) as api:
                    for _ in range(2):  # the second round: still serving, still 503
                        for (resource, verb), params in bodies.items():
                            reply = await api.call(resource, verb, params)
                            assert error_of(reply) == (503, "SERVICE_UNAVAILABLE"), verb
            finally:
                await client.close()

    async def test_info_lists_every_configuration_subject(
        self, nats_client: Client, mgmt_settings: InstanceSettings, namespace: str
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            iid = api.instances[0].instance_id
            reply = await nats_client.request(f"$SRV.INFO.aegis-mgmt.{iid}", b"", timeout=5)
        info = micro.ServiceInfo.from_dict(json.loads(reply.data))
        served = {e.subject: (e.name, e.queue_group) for e in info.endpoints}
        subjects = Subjects(namespace)
        for resource, verb in VERBS:
            assert served[subjects.mgmt(resource, verb)] == (f"{resource}_{verb}", "aegis-mgmt")


class TestClient:
    """ManagementClient's helpers for applications and configurations."""

    async def test_the_typed_helpers_round_trip_and_raise_service_errors(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as api:
            client = api.client
            app = await client.create_application("billing", comments="pays")
            assert (await client.get_application(name="billing")) == app
            renamed = await client.update_application(
                app.application.id, app.revision, name="billing-2"
            )
            assert renamed.application.name == "billing-2"
            config = await client.create_configuration(app.application.id, "db", {"pool": 5})
            by_name = await client.get_configuration(application_id=app.application.id, name="db")
            assert by_name == config
            updated = await client.update_configuration(
                config.configuration.id, config.revision, config={"pool": 6}
            )
            history = await client.configuration_history(config.configuration.id)
            assert [h.revision for h in history] == [updated.revision, config.revision]
            assert [h.configuration.config for h in history] == [{"pool": 6}, {"pool": 5}]
            for i in range(3):
                await client.create_application(f"app-{i}")
            names = [a.name async for a in client.all_applications(page_size=2)]
            assert names == ["app-0", "app-1", "app-2", "billing-2"]
            configs = [c.name async for c in client.all_configurations(app.application.id)]
            assert configs == ["db"]
            page = await client.list_configurations(limit=1)
            assert [c.id for c in page.items] == [config.configuration.id]
            with pytest.raises(ServiceError) as info:
                await client.update_configuration(
                    config.configuration.id, config.revision, comments="late"
                )
            assert (info.value.status, info.value.code) == (409, "REVISION_CONFLICT")
            await client.delete_configuration(config.configuration.id)
            await client.delete_application(app.application.id, renamed.revision)
            with pytest.raises(ServiceError) as info:
                await client.get_application(app.application.id)
            assert info.value.status == 404


class TestRepairOnFirstUse:
    """Leftovers of a crash are repaired once, before the first answer, by whichever
    instance gets there first: no request of the first burst fails for it."""

    async def test_a_burst_on_two_fresh_instances_over_leftovers_is_answered_in_full(
        self, nats_client: Client, mgmt_settings: InstanceSettings, namespace: str
    ) -> None:
        store = await ConfigurationStore.open(nats_client.jetstream(), Buckets(namespace))
        long_ago = format_timestamp(utc_now() - timedelta(minutes=5))
        orphans = [str(ULID()) for _ in range(5)]
        for orphan in orphans:  # configurations whose application is long gone
            record = {
                "id": orphan, "applicationId": NOBODY, "name": "db", "comments": "",
                "config": {}, "createdAt": long_ago, "updatedAt": long_ago,
            }  # fmt: skip
            await store.bucket.put(configuration_key(orphan), json.dumps(record).encode())
        statuses: list[int] = []
        async with management(nats_client, mgmt_settings, count=2) as api:

            async def read(i: int) -> None:
                reply = await api.call("configs", "list", {}, via=i % 2)
                statuses.append(reply["status"])

            async with anyio.create_task_group() as tg:
                for i in range(40):
                    tg.start_soon(read, i)
            gone = [await api.call("configs", "get", {"id": orphan}) for orphan in orphans]
        assert statuses == [200] * 40
        for reply in gone:
            assert error_of(reply) == (404, "NOT_FOUND")
