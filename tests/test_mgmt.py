"""The management actor over real NATS: replies, definitions, instances, bad input, races, outages."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import nats.micro.service as micro
import pytest
from nats.aio.client import Client

from aegis_actors import (
    ActorSystem,
    ConnectionSettings,
    InstanceSettings,
    ManagementClient,
    ManagementService,
    NatsServer,
    RunningInstance,
    ServiceActor,
    ServiceError,
    Subjects,
    connect,
    rpc,
    start_instance,
)
from aegis_actors._buckets import Buckets
from aegis_actors._wire import ERROR_CODE_HEADER, ERROR_HEADER

pytestmark = pytest.mark.nats

ORDERS = {"serviceName": "orders", "owner": "team-a", "version": "1.0.0"}
VERBS = [
    ("services", "create"),
    ("services", "get"),
    ("services", "list"),
    ("services", "update"),
    ("services", "delete"),
    ("instances", "list"),
    ("instances", "get"),
]


class Mgmt:
    """A running management fleet in one namespace, and ways to talk to it."""

    def __init__(self, nats: Client, namespace: str, instances: list[RunningInstance]) -> None:
        self.nats = nats
        self.subjects = Subjects(namespace)
        self.instances = instances
        self.client = ManagementClient(nats, namespace=namespace)

    async def raw(
        self, resource: str, verb: str, body: bytes, *, subject: str | None = None
    ) -> tuple[dict[str, Any], dict[str, str]]:
        msg = await self.nats.request(
            subject or self.subjects.mgmt(resource, verb), body, timeout=10
        )
        return json.loads(msg.data), dict(msg.headers or {})

    async def call(
        self, resource: str, verb: str, params: Any, *, via: int | None = None
    ) -> dict[str, Any]:
        """A request through the queue group, or to instance number `via` directly."""
        subject = None
        if via is not None:
            iid = self.instances[via].instance_id
            subject = self.subjects.instance(iid, f"{resource}_{verb}")
        reply, headers = await self.raw(
            resource, verb, json.dumps(params).encode(), subject=subject
        )
        if not reply["ok"]:
            assert headers[ERROR_CODE_HEADER] == str(reply["status"])
            assert headers[ERROR_HEADER] == reply["error"]["message"]
        return reply

    async def still_serving(self) -> None:
        """A good request after bad ones is answered as usual."""
        reply = await self.call("services", "create", {**ORDERS, "serviceName": "alive"})
        assert reply["status"] in (201, 409)
        assert (await self.call("services", "get", {"serviceName": "alive"}))["status"] == 200


@asynccontextmanager
async def management(
    nats: Client, settings: InstanceSettings, count: int = 1
) -> AsyncIterator[Mgmt]:
    async with ActorSystem() as system:
        running = [await start_instance(system, ManagementService, settings) for _ in range(count)]
        yield Mgmt(nats, settings.namespace, running)


@pytest.fixture
def mgmt_settings(instance_settings: InstanceSettings) -> InstanceSettings:
    return instance_settings.model_copy(update={"registration": False})


def error_of(reply: dict[str, Any]) -> tuple[int, str]:
    assert reply["ok"] is False
    return reply["status"], reply["error"]["code"]


def parse_time(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value)


class TestCreate:
    """create: 201 with the definition, server timestamps and the KV revision; 409 if taken."""

    async def test_create_answers_201_with_server_timestamps_and_the_revision(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            before = datetime.now(UTC) - timedelta(milliseconds=1)
            reply = await mgmt.call("services", "create", ORDERS)
            after = datetime.now(UTC)
        assert reply["status"] == 201
        assert reply["revision"] == 1
        data = reply["data"]
        assert {k: data[k] for k in ORDERS} == ORDERS
        assert data["description"] == ""
        assert data["createdAt"] == data["updatedAt"]
        assert before <= parse_time(data["createdAt"]) <= after

    async def test_the_definition_is_stored_as_sent_back_in_a_bucket_that_never_expires(
        self, nats_client: Client, mgmt_settings: InstanceSettings, namespace: str
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            reply = await mgmt.call("services", "create", ORDERS)
        bucket = Buckets(namespace).definitions
        assert bucket == f"{namespace}-service-definitions"
        js = nats_client.jetstream()
        stored = await js.get_msg(f"KV_{bucket}", subject=f"$KV.{bucket}.orders")
        assert json.loads(stored.data or b"") == reply["data"]
        config = (await js.stream_info(f"KV_{bucket}")).config
        assert config.max_age in (None, 0)
        assert config.max_msgs_per_subject == 5

    async def test_a_taken_name_is_a_409_already_exists(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            await mgmt.call("services", "create", ORDERS)
            reply = await mgmt.call("services", "create", {**ORDERS, "owner": "team-b"})
            assert error_of(reply) == (409, "ALREADY_EXISTS")
            assert reply["error"]["details"] == {"serviceName": "orders"}
            kept = await mgmt.call("services", "get", {"serviceName": "orders"})
            assert kept["data"]["owner"] == "team-a"

    async def test_a_deleted_name_can_be_created_again(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            await mgmt.call("services", "create", ORDERS)
            await mgmt.call("services", "delete", {"serviceName": "orders"})
            reply = await mgmt.call("services", "create", {**ORDERS, "version": "2.0.0"})
        assert reply["status"] == 201
        assert reply["data"]["version"] == "2.0.0"


class TestGet:
    """get: 200 with the revision, or 404."""

    async def test_get_returns_the_definition_and_its_revision(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            created = await mgmt.call("services", "create", ORDERS)
            reply = await mgmt.call("services", "get", {"serviceName": "orders"})
        assert reply == {**created, "status": 200}

    async def test_a_missing_name_is_a_404(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            reply = await mgmt.call("services", "get", {"serviceName": "nothing"})
        assert error_of(reply) == (404, "NOT_FOUND")


class TestList:
    """list: sorted by name, `limit` per page, `nextCursor` until the end."""

    async def test_pages_are_sorted_and_the_cursor_walks_them_all(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        names = [f"svc-{i:03d}" for i in range(23)]
        async with management(nats_client, mgmt_settings) as mgmt:
            async with anyio.create_task_group() as tg:
                for name in reversed(names):
                    tg.start_soon(mgmt.call, "services", "create", {**ORDERS, "serviceName": name})
            seen: list[str] = []
            params: dict[str, Any] = {"limit": 10}
            pages = 0
            while True:
                reply = await mgmt.call("services", "list", params)
                assert reply["status"] == 200
                assert "revision" not in reply
                seen += [item["serviceName"] for item in reply["data"]["items"]]
                pages += 1
                if reply["data"]["nextCursor"] is None:
                    break
                params["cursor"] = reply["data"]["nextCursor"]
        assert seen == names
        assert pages == 3

    async def test_the_default_page_is_100(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            async with anyio.create_task_group() as tg:
                for i in range(101):
                    body = {**ORDERS, "serviceName": f"svc-{i:03d}"}
                    tg.start_soon(mgmt.call, "services", "create", body)
            reply = await mgmt.call("services", "list", {})
        assert len(reply["data"]["items"]) == 100
        assert reply["data"]["nextCursor"] == "svc-099"

    async def test_any_instance_lists_the_writes_another_instance_just_made(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async def names(via: int) -> dict[str, str]:
            reply = await mgmt.call("services", "list", {}, via=via)
            return {i["serviceName"]: i["version"] for i in reply["data"]["items"]}

        async with management(nats_client, mgmt_settings, count=2) as mgmt:
            assert await names(1) == {}
            created = await mgmt.call("services", "create", ORDERS, via=0)
            assert await names(1) == {"orders": "1.0.0"}
            update = {"serviceName": "orders", "revision": created["revision"], "version": "1.1.0"}
            await mgmt.call("services", "update", update, via=0)
            assert await names(1) == {"orders": "1.1.0"}
            await mgmt.call("services", "delete", {"serviceName": "orders"}, via=0)
            assert await names(1) == {}
            assert await names(0) == {}


class TestUpdate:
    """update: the fields sent, at the revision read; 404; 409 on a stale revision."""

    async def test_update_changes_only_the_fields_sent_and_moves_updated_at(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            created = await mgmt.call("services", "create", {**ORDERS, "description": "v1"})
            update = {"serviceName": "orders", "revision": created["revision"], "owner": "team-c"}
            reply = await mgmt.call("services", "update", update)
            current = await mgmt.call("services", "get", {"serviceName": "orders"})
        assert reply["status"] == 200
        assert reply["revision"] > created["revision"]
        old, new = created["data"], reply["data"]
        assert new == {**old, "owner": "team-c", "updatedAt": new["updatedAt"]}
        assert parse_time(new["updatedAt"]) >= parse_time(old["updatedAt"])
        assert current["data"] == new
        assert current["revision"] == reply["revision"]

    async def test_a_stale_revision_is_a_409_naming_the_current_one(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            created = await mgmt.call("services", "create", ORDERS)
            first = {"serviceName": "orders", "revision": created["revision"], "version": "1.1.0"}
            done = await mgmt.call("services", "update", first)
            reply = await mgmt.call("services", "update", {**first, "version": "9.9.9"})
            current = await mgmt.call("services", "get", {"serviceName": "orders"})
        assert error_of(reply) == (409, "REVISION_CONFLICT")
        assert reply["error"]["details"] == {
            "serviceName": "orders",
            "revision": created["revision"],
            "currentRevision": done["revision"],
        }
        assert current["data"]["version"] == "1.1.0"

    async def test_update_of_a_missing_definition_is_a_404(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            update = {"serviceName": "nothing", "revision": 1, "owner": "x"}
            reply = await mgmt.call("services", "update", update)
        assert error_of(reply) == (404, "NOT_FOUND")

    async def test_a_blank_owner_is_a_422_and_nothing_changes(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            created = await mgmt.call("services", "create", ORDERS)
            update = {"serviceName": "orders", "revision": created["revision"], "owner": "  "}
            reply = await mgmt.call("services", "update", update)
            kept = await mgmt.call("services", "get", {"serviceName": "orders"})
        assert error_of(reply) == (422, "VALIDATION_ERROR")
        assert reply["error"]["details"]["field"] == "owner"
        assert kept["data"] == created["data"]
        assert kept["revision"] == created["revision"]

    async def test_update_without_a_revision_is_a_422(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            await mgmt.call("services", "create", ORDERS)
            reply = await mgmt.call("services", "update", {"serviceName": "orders", "owner": "x"})
            current = await mgmt.call("services", "get", {"serviceName": "orders"})
        assert error_of(reply) == (422, "VALIDATION_ERROR")
        assert reply["error"]["details"]["field"] == "revision"
        assert current["data"]["owner"] == "team-a"


class TestDelete:
    """delete: 204; 404 if missing; 409 on a stale revision."""

    async def test_delete_answers_204_and_the_definition_is_gone(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            created = await mgmt.call("services", "create", ORDERS)
            body = {"serviceName": "orders", "revision": created["revision"]}
            reply = await mgmt.call("services", "delete", body)
            gone = await mgmt.call("services", "get", {"serviceName": "orders"})
        assert reply == {"ok": True, "status": 204, "data": None}
        assert error_of(gone) == (404, "NOT_FOUND")

    async def test_delete_of_a_missing_name_is_a_404_even_twice(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            await mgmt.call("services", "create", ORDERS)
            assert (await mgmt.call("services", "delete", {"serviceName": "orders"}))["ok"]
            again = await mgmt.call("services", "delete", {"serviceName": "orders"})
            never = await mgmt.call("services", "delete", {"serviceName": "never"})
        assert error_of(again) == (404, "NOT_FOUND")
        assert error_of(never) == (404, "NOT_FOUND")

    async def test_a_stale_revision_is_a_409_and_nothing_is_deleted(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            created = await mgmt.call("services", "create", ORDERS)
            update = {"serviceName": "orders", "revision": created["revision"], "owner": "x"}
            await mgmt.call("services", "update", update)
            body = {"serviceName": "orders", "revision": created["revision"]}
            reply = await mgmt.call("services", "delete", body)
            kept = await mgmt.call("services", "get", {"serviceName": "orders"})
        assert error_of(reply) == (409, "REVISION_CONFLICT")
        assert kept["data"]["owner"] == "x"

    @pytest.mark.parametrize("revision", [None, True, 1.0, "1", 0])
    async def test_a_revision_that_is_not_a_positive_integer_is_a_422_and_nothing_is_deleted(
        self, nats_client: Client, mgmt_settings: InstanceSettings, revision: Any
    ) -> None:
        # A null used to delete unconditionally (JS and Go clients send a missing field as null).
        async with management(nats_client, mgmt_settings) as mgmt:
            await mgmt.call("services", "create", ORDERS)
            body = {"serviceName": "orders", "revision": revision}
            reply = await mgmt.call("services", "delete", body)
            kept = await mgmt.call("services", "get", {"serviceName": "orders"})
        assert error_of(reply) == (422, "VALIDATION_ERROR")
        assert reply["error"]["details"]["field"] == "revision"
        assert kept["ok"]

    async def test_of_two_racing_deletes_exactly_one_succeeds(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            await mgmt.call("services", "create", ORDERS)
            replies: list[dict[str, Any]] = []

            async def delete() -> None:
                replies.append(await mgmt.call("services", "delete", {"serviceName": "orders"}))

            async with anyio.create_task_group() as tg:
                for _ in range(10):
                    tg.start_soon(delete)
        assert sorted(r["status"] for r in replies) == [204] + [404] * 9


def body(**fields: Any) -> bytes:
    """A create request: ORDERS with `fields` changed (`...` leaves a field out)."""
    merged = {**ORDERS, **fields}
    return json.dumps({k: v for k, v in merged.items() if v is not ...}).encode()


ONE_MIB = 1024 * 1024
BAD_CREATES: list[tuple[str, bytes, int, str | None]] = [
    ("not JSON", b"{serviceName: orders}", 400, None),
    ("JSON but a list", b'[{"serviceName": "orders"}]', 400, None),
    ("JSON but a string", b'"orders"', 400, None),
    ("JSON null", b"null", 400, None),
    ("empty body", b"", 400, None),
    ("1 MiB body", b'{"serviceName": "' + b"a" * (ONE_MIB - 19) + b'"}', 400, None),
    ("unknown field", body(team="a"), 422, "team"),
    ("revision on create", body(revision=1), 422, "revision"),
    ("owner not a string", body(owner=5), 422, "owner"),
    ("version a number", body(version=1.0), 422, "version"),
    ("name null", body(serviceName=None), 422, "serviceName"),
    ("description a list", body(description=[]), 422, "description"),
    ("missing owner", body(owner=...), 422, "owner"),
    *[
        (f"name {name!r}", body(serviceName=name), 422, "serviceName")
        for name in ["ord.ers", "orders.*", "orders.>", "*", ">", "my orders", "Orders"]
    ],
    ("name of 2", body(serviceName="ab"), 422, "serviceName"),
    ("name of 65", body(serviceName="a" * 65), 422, "serviceName"),
    ("owner of 101", body(owner="o" * 101), 422, "owner"),
    ("empty owner", body(owner=""), 422, "owner"),
    ("blank owner", body(owner="   "), 422, "owner"),
    ("blank owner of tabs and newlines", body(owner="\t\n "), 422, "owner"),
    ("description of 501", body(description="d" * 501), 422, "description"),
    *[
        (f"version {v!r}", body(version=v), 422, "version")
        for v in ["1.0", "v1.0.0", "1.0.0-rc1", "1.0.0.0", "", "1..0"]
    ],
    *[
        (f"client {field}", body(**{field: "2025-08-02T10:30:00Z"}), 422, field)
        for field in ["createdAt", "updatedAt"]
    ],
]


class TestBadInput:
    """Every bad request gets a clear error reply with the NATS error headers, and the
    actor goes on serving with nothing written."""

    async def test_every_bad_create_is_refused_and_the_actor_keeps_serving(
        self, nats_client: Client, mgmt_settings: InstanceSettings, namespace: str
    ) -> None:
        assert len(BAD_CREATES[5][1]) == ONE_MIB
        async with management(nats_client, mgmt_settings) as mgmt:
            for what, body, status, field in BAD_CREATES:
                reply, headers = await mgmt.raw("services", "create", body)
                assert reply["ok"] is False, what
                assert reply["status"] == status, (what, reply)
                assert headers[ERROR_CODE_HEADER] == str(status), what
                assert headers[ERROR_HEADER], what
                assert len(reply["error"]["message"]) < 500, "no echo of huge input"
                if field is not None:
                    assert reply["error"]["details"]["field"] == field, (what, reply)
                    assert "value" in reply["error"]["details"]
            assert (await mgmt.call("services", "list", {}))["data"]["items"] == []
            await mgmt.still_serving()

    async def test_a_1_mib_body_is_refused_by_the_size_limit(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            reply, _ = await mgmt.raw("services", "create", b" " * ONE_MIB)
        assert error_of(reply) == (400, "BAD_REQUEST")
        assert "byte limit" in reply["error"]["message"]

    @pytest.mark.parametrize(("resource", "verb"), VERBS)
    async def test_every_verb_refuses_a_body_that_is_not_a_json_object(
        self, nats_client: Client, mgmt_settings: InstanceSettings, resource: str, verb: str
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            for body in (b"", b"nope", b"[]"):
                reply, headers = await mgmt.raw(resource, verb, body)
                assert error_of(reply) == (400, "BAD_REQUEST")
                assert headers[ERROR_CODE_HEADER] == "400"
            await mgmt.still_serving()

    @pytest.mark.parametrize("name", ["*", ">", "orders.>", "orders.*", "a.b.c"])
    async def test_wildcard_names_never_reach_the_store(
        self, nats_client: Client, mgmt_settings: InstanceSettings, name: str
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            await mgmt.call("services", "create", ORDERS)
            for verb, extra in (
                ("get", {}),
                ("delete", {}),
                ("update", {"revision": 1, "owner": "x"}),
            ):
                reply = await mgmt.call("services", verb, {"serviceName": name, **extra})
                assert error_of(reply) == (422, "VALIDATION_ERROR")
                assert reply["error"]["details"]["field"] == "serviceName"
            listed = await mgmt.call("services", "list", {})
        assert [i["serviceName"] for i in listed["data"]["items"]] == ["orders"]


class TestRaces:
    """Optimistic locking holds under load, through one instance or several."""

    async def test_100_concurrent_creates_of_one_name_give_one_201_and_99_409s(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        statuses: list[tuple[int, str | None]] = []
        async with management(nats_client, mgmt_settings, count=2) as mgmt:

            async def create(owner: str) -> None:
                reply = await mgmt.call("services", "create", {**ORDERS, "owner": owner})
                statuses.append((reply["status"], reply.get("error", {}).get("code")))

            async with anyio.create_task_group() as tg:
                for i in range(100):
                    tg.start_soon(create, f"owner-{i}")
            stored = await mgmt.call("services", "get", {"serviceName": "orders"})
            await mgmt.still_serving()
        assert statuses.count((201, None)) == 1
        assert statuses.count((409, "ALREADY_EXISTS")) == 99
        assert stored["revision"] == 1

    async def test_50_read_modify_write_writers_lose_no_update(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        conflicts = 0
        async with management(nats_client, mgmt_settings, count=2) as mgmt:
            created = await mgmt.client.create_service("orders", owner="team", version="1.0.0")

            async def writer(n: int) -> None:
                nonlocal conflicts
                while True:
                    current = await mgmt.client.get_service("orders")
                    description = current.definition.description + f"{n},"
                    try:
                        await mgmt.client.update_service(
                            "orders", current.revision, description=description
                        )
                        return
                    except ServiceError as exc:
                        if exc.code != "REVISION_CONFLICT":
                            raise
                        conflicts += 1

            async with anyio.create_task_group() as tg:
                for n in range(50):
                    tg.start_soon(writer, n)
            final = await mgmt.client.get_service("orders")
        written = final.definition.description.rstrip(",").split(",")
        assert sorted(written, key=int) == [str(n) for n in range(50)], "each write exactly once"
        assert final.revision == created.revision + 50, "one revision per successful write"
        assert conflicts > 0, "the writers did race"


class Pinger(ServiceActor):
    service_name = "pinger"
    version = "2.0.1"

    @rpc
    async def ping(self) -> str:
        return "pong"


class TestInstances:
    """instances.list / get read the live registry."""

    async def test_list_and_get_show_registered_instances(
        self, nats_client: Client, instance_settings: InstanceSettings
    ) -> None:
        async with ActorSystem() as system:
            pingers = [await start_instance(system, Pinger, instance_settings) for _ in range(2)]
            mgmt_instance = await start_instance(system, ManagementService, instance_settings)
            mgmt = Mgmt(nats_client, instance_settings.namespace, [mgmt_instance])
            everyone = await mgmt.call("instances", "list", {})
            only = await mgmt.call("instances", "list", {"serviceName": "pinger"})
            one = await mgmt.call("instances", "get", {"instanceId": pingers[0].instance_id})
            await system.stop(pingers[1].ref)
            after_stop = await mgmt.call("instances", "list", {"serviceName": "pinger"})
        ids = sorted(p.instance_id for p in pingers)
        assert [i["instanceId"] for i in everyone["data"]["items"]] == [
            mgmt_instance.instance_id,
            *ids,
        ]
        assert [i["instanceId"] for i in only["data"]["items"]] == ids
        assert one["status"] == 200
        assert one["data"]["serviceName"] == "pinger"
        assert one["data"]["version"] == "2.0.1"
        assert one["data"]["status"] == "ACTIVE"
        assert [i["instanceId"] for i in after_stop["data"]["items"]] == [pingers[0].instance_id]

    async def test_unknown_or_malformed_ids_are_404_and_422(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            missing = await mgmt.call("instances", "get", {"instanceId": "pinger-0badc0de"})
            malformed = await mgmt.call("instances", "get", {"instanceId": "pinger.*"})
            bad_filter = await mgmt.call("instances", "list", {"serviceName": "*"})
            empty = await mgmt.call("instances", "list", {"serviceName": "pinger"})
        assert error_of(missing) == (404, "NOT_FOUND")
        assert error_of(malformed) == (422, "VALIDATION_ERROR")
        assert error_of(bad_filter) == (422, "VALIDATION_ERROR")
        assert empty["data"] == {"items": []}


class TestStoreUnavailable:
    """Without JetStream every verb answers 503 SERVICE_UNAVAILABLE, and keeps answering."""

    async def test_every_verb_is_a_503_while_jetstream_is_unreachable(
        self, mgmt_settings: InstanceSettings
    ) -> None:
        bodies = {
            "create": ORDERS,
            "get": {"serviceName": "orders"},
            "list": {},
            "update": {"serviceName": "orders", "revision": 1, "owner": "x"},
            "delete": {"serviceName": "orders"},
        }
        with NatsServer(extra_config="jetstream: disabled") as server:
            settings = mgmt_settings.model_copy(update={"nats": ConnectionSettings(url=server.url)})
            client = await connect(settings.nats)
            try:
                async with management(client, settings) as mgmt:
                    for _ in range(2):  # the second round: still serving, still 503
                        for (resource, verb), body in [
                            *((("services", v), b) for v, b in bodies.items()),
                            (("instances", "list"), {}),
                            (("instances", "get"), {"instanceId": "pinger-0badc0de"}),
                        ]:
                            reply = await mgmt.call(resource, verb, body)
                            assert error_of(reply) == (503, "SERVICE_UNAVAILABLE"), verb
                            assert "unreachable" in reply["error"]["message"]
            finally:
                await client.close()


class TestDeletedBucket:
    """A definitions bucket deleted by hand is created again (empty) at the next request."""

    async def test_after_one_503_the_bucket_is_back(
        self, nats_client: Client, mgmt_settings: InstanceSettings, namespace: str
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            await mgmt.call("services", "create", ORDERS)
            await nats_client.jetstream().delete_key_value(Buckets(namespace).definitions)
            first = await mgmt.call("services", "create", ORDERS)
            second = await mgmt.call("services", "create", ORDERS)
            listed = await mgmt.call("services", "list", {})
        assert error_of(first) == (503, "SERVICE_UNAVAILABLE")
        assert second["status"] == 201
        assert [i["serviceName"] for i in listed["data"]["items"]] == ["orders"]


class TestServiceProtocol:
    """$SRV.INFO lists the management subjects, in the aegis-mgmt queue group."""

    async def test_info_lists_every_management_subject(
        self, nats_client: Client, mgmt_settings: InstanceSettings, namespace: str
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            iid = mgmt.instances[0].instance_id
            reply = await nats_client.request(f"$SRV.INFO.aegis-mgmt.{iid}", b"", timeout=5)
        info = micro.ServiceInfo.from_dict(json.loads(reply.data))
        served = {e.subject: (e.name, e.queue_group) for e in info.endpoints}
        subjects = Subjects(namespace)
        for resource, verb in VERBS:
            assert served[subjects.mgmt(resource, verb)] == (f"{resource}_{verb}", "aegis-mgmt")


class TestUnknownSubjects:
    """Any other `aegis.mgmt.>` subject gets one 404 naming the known verbs, never silence."""

    @pytest.mark.parametrize(
        "tail",
        [
            "widgets.create",  # unknown resource
            "services.frobnicate",  # unknown verb
            "services",  # a resource without a verb
            "services.create.now",  # a known verb with one token too many
            "services_create",  # a method name is not a management subject
        ],
    )
    async def test_an_unknown_resource_or_verb_is_a_404_listing_the_known_ones(
        self, nats_client: Client, mgmt_settings: InstanceSettings, tail: str
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            subject = f"{mgmt.subjects.mgmt_root()}.{tail}"
            reply, headers = await mgmt.raw("", "", b"{}", subject=subject)
            await mgmt.still_serving()
        assert error_of(reply) == (404, "NOT_FOUND")
        assert headers[ERROR_CODE_HEADER] == "404"
        assert headers[ERROR_HEADER] == reply["error"]["message"]
        assert tail in reply["error"]["message"]
        details = reply["error"]["details"]
        assert details["method"] == tail
        assert {f"{r}.{v}" for r, v in VERBS} <= set(details["methods"])
        assert {"apps.create", "configs.history"} <= set(details["methods"])
        assert details["methods"] == sorted(details["methods"])

    async def test_each_request_gets_exactly_one_reply_from_several_instances(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        """Known and unknown subjects alike: one instance of the queue group, one reply."""
        async with management(nats_client, mgmt_settings, count=2) as mgmt:
            inbox = nats_client.new_inbox()
            replies = await nats_client.subscribe(inbox)
            create = mgmt.subjects.mgmt("services", "create")
            unknown = mgmt.subjects.mgmt("services", "frobnicate")
            for subject in (create, unknown):
                await nats_client.publish(subject, json.dumps(ORDERS).encode(), reply=inbox)
            with anyio.fail_after(10):
                got = [json.loads((await replies.next_msg(timeout=10)).data) for _ in range(2)]
            # A second copy of either would come right behind the first ones.
            with pytest.raises(TimeoutError):
                await replies.next_msg(timeout=0.3)
            stats = []
            for running in mgmt.instances:
                subject = f"$SRV.STATS.aegis-mgmt.{running.instance_id}"
                msg = await nats_client.request(subject, b"", timeout=5)
                stats.append(micro.ServiceStats.from_dict(json.loads(msg.data)))
        assert sorted((r["status"], r.get("error", {}).get("code")) for r in got) == [
            (201, None),
            (404, "NOT_FOUND"),
        ]
        counted = [(e.subject, e.num_requests) for s in stats for e in s.endpoints]
        assert [c for c in counted if c[1]] == [(create, 1)], "one instance counted it, once"

    async def test_info_does_not_list_the_catch_all(
        self, nats_client: Client, mgmt_settings: InstanceSettings
    ) -> None:
        async with management(nats_client, mgmt_settings) as mgmt:
            iid = mgmt.instances[0].instance_id
            reply = await nats_client.request(f"$SRV.INFO.aegis-mgmt.{iid}", b"", timeout=5)
        info = micro.ServiceInfo.from_dict(json.loads(reply.data))
        assert not [e.subject for e in info.endpoints if "*" in e.subject or ">" in e.subject]
