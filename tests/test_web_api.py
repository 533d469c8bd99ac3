"""The web monitor over HTTP, against a real fleet: its event stream, its relay, its guards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest
import pytest_asyncio

from aegis_actors import (
    ActorSystem,
    InstanceSettings,
    ManagementService,
    NatsServer,
    ServiceError,
    start_instance,
)
from aegis_actors._auth import Credential, fleet_roles, grants_of, render
from aegis_actors._client import Client
from aegis_actors._connection import ConnectionSettings, connect
from aegis_actors._mgmt.client import ManagementClient
from aegis_actors._web.monitor import open_monitor
from aegis_actors._web.settings import WebSettings
from tests.web_support import (
    READER,
    EventReader,
    Quote,
    WebFleet,
    in_own_task,
    user_url,
    web_fleet,
)

pytestmark = [pytest.mark.nats, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fleet() -> AsyncIterator[WebFleet]:
    async with in_own_task(web_fleet) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession, base: str, path: str, body: Any, **headers: str
) -> tuple[int, Any]:
    async with http.post(base + path.lstrip("/"), json=body, headers=headers or None) as r:
        return r.status, await r.json(content_type=None)


class TestEventStream:
    """The stream starts with a snapshot of the registry, then pushes each change."""

    async def test_the_snapshot_holds_every_registered_instance(
        self, fleet: WebFleet, http: aiohttp.ClientSession
    ) -> None:
        async with http.get(fleet.admin.url + "api/events") as response:
            assert response.headers["Content-Type"] == "text/event-stream"
            event, snapshot = await EventReader(response).next()
        assert event == "snapshot"
        ids = {r["instanceId"] for r in snapshot["instances"]}
        assert ids == {i for ids in fleet.instances.values() for i in ids}
        ledger = [r for r in snapshot["instances"] if r["serviceName"] == "ledger"]
        assert sorted(r["status"] for r in ledger) == ["ACTIVE", "STANDBY"]
        active = next(r for r in ledger if r["status"] == "ACTIVE")
        assert active["stickyActiveGroup"] == "main"
        assert active["leadershipRevision"] >= 1
        pricing = next(r for r in snapshot["instances"] if r["serviceName"] == "pricing")
        assert pricing["configuration"] == {"application": "trading", "name": "limits"}
        assert snapshot["status"] == {"connected": True, "synced": True}

    async def test_a_new_instance_and_its_graceful_stop_are_pushed(
        self, fleet: WebFleet, http: aiohttp.ClientSession
    ) -> None:
        async with http.get(fleet.admin.url + "api/events") as response:
            events = EventReader(response)
            await events.until("snapshot")
            running = await start_instance(fleet.system, Quote, fleet.settings)
            with anyio.fail_after(5):
                record = await events.until(
                    "instance", lambda r: r["instanceId"] == running.instance_id
                )
            assert record["status"] == "ACTIVE"
            assert record["version"] == "2.1.0"
            await fleet.system.stop(running.ref)
            with anyio.fail_after(5):
                gone = await events.until("gone", lambda g: g["instanceId"] == running.instance_id)
            assert gone["reason"] == "DELETED"

    async def test_request_counts_arrive_as_stats_events(
        self, fleet: WebFleet, http: aiohttp.ClientSession
    ) -> None:
        async with Client(url=fleet.admin_url) as client:
            for _ in range(3):
                await client.call("quote", "ok", {})
        quotes = fleet.instances["quote"]
        async with http.get(fleet.admin.url + "api/events") as response:
            events = EventReader(response)
            with anyio.fail_after(5):
                stats = await events.until(
                    "stats",
                    lambda s: sum(s["instances"].get(i, [0])[0] for i in quotes) >= 3,
                )
        assert set(stats["instances"]) <= {i for ids in fleet.instances.values() for i in ids}


class TestRelay:
    """Management requests go to aegis.mgmt.* and come back as the API's envelopes."""

    async def test_a_422_names_the_field_and_keeps_its_status(
        self, fleet: WebFleet, http: aiohttp.ClientSession
    ) -> None:
        status, reply = await post(
            http, fleet.admin.url, "api/mgmt/services/create",
            {"serviceName": "orders", "owner": "team", "version": "1.0"},
        )  # fmt: skip
        assert status == 422
        assert reply["error"]["code"] == "VALIDATION_ERROR"
        assert reply["error"]["details"]["field"] == "version"

    async def test_create_update_and_delete_go_through(
        self, fleet: WebFleet, http: aiohttp.ClientSession
    ) -> None:
        base = fleet.admin.url
        status, created = await post(
            http, base, "api/mgmt/services/create",
            {"serviceName": "relayed", "owner": "team", "version": "1.0.0"},
        )  # fmt: skip
        assert status == 201
        assert created["revision"] >= 1
        status, stale = await post(
            http, base, "api/mgmt/services/update",
            {"serviceName": "relayed", "revision": created["revision"] + 5, "owner": "x"},
        )  # fmt: skip
        assert (status, stale["error"]["code"]) == (409, "REVISION_CONFLICT")
        status, deleted = await post(
            http, base, "api/mgmt/services/delete",
            {"serviceName": "relayed", "revision": created["revision"]},
        )  # fmt: skip
        assert (status, deleted["status"]) == (200, 204)

    @pytest.mark.parametrize(
        ("path", "body", "status", "code"),
        [
            ("api/mgmt/services/destroy", {}, 404, "NOT_FOUND"),
            ("api/mgmt/secrets/get", {}, 404, "NOT_FOUND"),
            ("api/mgmt/services/list", [1, 2], 400, "BAD_REQUEST"),
        ],
    )
    async def test_only_the_apis_requests_are_relayed(
        self,
        fleet: WebFleet,
        http: aiohttp.ClientSession,
        path: str,
        body: Any,
        status: int,
        code: str,
    ) -> None:
        got, reply = await post(http, fleet.admin.url, path, body)
        assert (got, reply["error"]["code"]) == (status, code)

    async def test_a_body_that_is_not_json_is_a_400(
        self, fleet: WebFleet, http: aiohttp.ClientSession
    ) -> None:
        async with http.post(
            fleet.admin.url + "api/mgmt/services/list",
            data=b"{not json",
            headers={"Content-Type": "application/json"},
        ) as response:
            assert response.status == 400
            assert (await response.json())["error"]["code"] == "BAD_REQUEST"


class TestWriteAccess:
    """The viewer's credentials may not write: the pages are told, and writes fail at once."""

    async def test_the_viewer_snapshot_says_nothing_can_be_written(
        self, fleet: WebFleet, http: aiohttp.ClientSession
    ) -> None:
        async with http.get(fleet.viewer.url + "api/events") as response:
            events = EventReader(response)
            snapshot = await events.until("snapshot")
            access = snapshot["access"]
            if not access["known"]:  # the check runs right after the start
                with anyio.fail_after(5):
                    access = await events.until("access", lambda a: a["known"])
        assert access == {
            "resources": {"services": False, "apps": False, "configs": False},
            "known": True,
        }

    async def test_a_user_who_may_not_ask_is_probed(self, fleet: WebFleet) -> None:
        # `reader` may not even ask USER.INFO: each write verb is tried with `{}`.
        reader = ConnectionSettings(url=user_url(fleet.server.url, READER))
        async with (
            open_monitor(reader, WebSettings(port=0)) as monitor,
            aiohttp.ClientSession() as http,
            http.get(monitor.url + "api/events") as response,
        ):
            events = EventReader(response)
            access = (await events.until("snapshot"))["access"]
            if not access["known"]:
                with anyio.fail_after(10):
                    access = await events.until("access", lambda a: a["known"])
        assert access == {
            "resources": {"services": False, "apps": False, "configs": False},
            "known": True,
        }

    async def test_the_admin_may_write_everything(
        self, fleet: WebFleet, http: aiohttp.ClientSession
    ) -> None:
        async with http.get(fleet.admin.url + "api/events") as response:
            snapshot = await EventReader(response).until("snapshot")
        assert snapshot["access"]["resources"] == {"services": True, "apps": True, "configs": True}

    async def test_a_refused_write_is_a_403_well_before_the_timeout(
        self, fleet: WebFleet, http: aiohttp.ClientSession
    ) -> None:
        # The relay's timeout is 5 s: the permissions violation must answer first.
        with anyio.fail_after(2.5):
            status, reply = await post(
                http, fleet.viewer.url, "api/mgmt/services/create",
                {"serviceName": "denied", "owner": "team", "version": "1.0.0"},
            )  # fmt: skip
        assert (status, reply["error"]["code"]) == (403, "PERMISSION_DENIED")
        assert reply["error"]["details"]["subject"] == "aegis.mgmt.services.create"
        client = await connect(ConnectionSettings(url=fleet.admin_url))
        try:
            with pytest.raises(ServiceError, match="NOT_FOUND"):
                await ManagementClient(client).get_service("denied")
        finally:
            await client.close()

    async def test_reads_still_work_for_the_viewer(
        self, fleet: WebFleet, http: aiohttp.ClientSession
    ) -> None:
        status, reply = await post(http, fleet.viewer.url, "api/mgmt/instances/list", {})
        assert status == 200
        assert len(reply["data"]["items"]) >= 6


class TestGuards:
    """What a page of another site can make a browser send is refused."""

    async def test_a_post_from_another_origin_is_refused(
        self, fleet: WebFleet, http: aiohttp.ClientSession
    ) -> None:
        status, reply = await post(
            http, fleet.admin.url, "api/mgmt/services/list", {}, Origin="http://evil.example"
        )
        assert (status, reply["error"]["code"]) == (400, "BAD_REQUEST")

    async def test_a_post_that_is_not_json_is_refused(
        self, fleet: WebFleet, http: aiohttp.ClientSession
    ) -> None:
        async with http.post(
            fleet.admin.url + "api/mgmt/services/list",
            data=b"{}",
            headers={"Content-Type": "text/plain"},
        ) as response:
            assert response.status == 400

    async def test_a_foreign_host_name_is_refused_on_loopback(
        self, fleet: WebFleet, http: aiohttp.ClientSession
    ) -> None:
        # A DNS-rebinding page reaches 127.0.0.1 under its own name.
        async with http.get(fleet.admin.url, headers={"Host": "evil.example"}) as response:
            assert response.status == 421

    async def test_pages_forbid_framing_and_foreign_scripts(
        self, fleet: WebFleet, http: aiohttp.ClientSession
    ) -> None:
        async with http.get(fleet.admin.url + "services/quote") as response:
            assert response.status == 200
            assert "text/html" in response.headers["Content-Type"]
            policy = response.headers["Content-Security-Policy"]
            assert "default-src 'self'" in policy
            assert "frame-ancestors 'none'" in policy

    @pytest.mark.parametrize(
        "path", ["static/..%2fapp.py", "static/index.html", "static/nope.js", "api/nothing"]
    )
    async def test_only_the_packaged_assets_are_served(
        self, fleet: WebFleet, http: aiohttp.ClientSession, path: str
    ) -> None:
        async with http.get(fleet.admin.url + path) as response:
            assert response.status in (404, 405)

    async def test_stats_refuse_a_name_that_is_not_one(
        self, fleet: WebFleet, http: aiohttp.ClientSession
    ) -> None:
        async with http.get(fleet.admin.url + "api/stats/services/a.b*") as response:
            assert response.status == 400
        async with http.get(fleet.admin.url + "api/stats/instances/quote-xyz") as response:
            assert response.status == 400


class TestAegisAuthRoles:
    """With the roles `aegis auth` writes, the viewer's monitor shows the fleet, read-only."""

    async def test_the_viewer_role_sees_the_fleet_and_may_write_nothing(self) -> None:
        roles = fleet_roles([grants_of(ManagementService), grants_of(Quote)])
        credentials = {r.name: Credential(password=f"{r.user}-secret") for r in roles}
        users = {r.name: (r.user, f"{r.user}-secret") for r in roles}
        with NatsServer(extra_config=render(roles, credentials)) as server:

            def settings(role: str) -> InstanceSettings:
                url = user_url(server.url, users[role])
                return InstanceSettings(nats=ConnectionSettings(url=url))

            viewer = ConnectionSettings(url=user_url(server.url, users["viewer"]))
            async with ActorSystem("roles") as system:
                # The services' own credentials make their buckets (a viewer only reads).
                await start_instance(system, ManagementService, settings("service:aegis-mgmt"))
                quote = await start_instance(system, Quote, settings("service:quote"))
                async with (
                    open_monitor(viewer, WebSettings(port=0)) as monitor,
                    aiohttp.ClientSession() as http,
                    http.get(monitor.url + "api/events") as response,
                ):
                    events = EventReader(response)
                    snapshot = await events.until("snapshot")
                    access = snapshot["access"]
                    if not access["known"]:
                        with anyio.fail_after(10):
                            access = await events.until("access", lambda a: a["known"])
        assert quote.instance_id in {r["instanceId"] for r in snapshot["instances"]}
        assert snapshot["status"] == {"connected": True, "synced": True}
        assert access["resources"] == {"services": False, "apps": False, "configs": False}
