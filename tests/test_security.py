"""Roles enforced by a real nats-server: each role does its job and is refused the rest, at once.

One server per module, started with the authorization block `aegis auth`
renders for the showcase services and a test service, every user with its
own password. What the issue's hijacker did (a forged registry record, a
subscription to another service's subjects) is tried here and refused.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import anyio
import pytest
from nats.js import api
from pydantic import BaseModel
from structlog.testing import capture_logs

from aegis_actors import (
    ActorSystem,
    Client,
    ConfigurationBinding,
    ConnectionSettings,
    DiscoveryMode,
    DiscoverySettings,
    HeartbeatSettings,
    InstanceSettings,
    KVBucket,
    LeadershipSettings,
    ManagementClient,
    ManagementService,
    NatsServer,
    PermissionDeniedError,
    ServiceActor,
    ServiceError,
    StorePermissionError,
    StoreUnavailableError,
    Subjects,
    connect,
    event,
    rpc,
    start_instance,
)
from aegis_actors._auth import Credential, fleet_roles, grants_of, render
from aegis_actors._buckets import Buckets, instance_key, kv_stream, kv_subject
from services.trading.order import OrderService
from services.trading.pricing import PricingService
from services.trading.risk import RiskService
from tests.secure_support import Refusals, secret

pytestmark = pytest.mark.nats

NS = "sec"
SUBJECTS = Subjects(NS)
BUCKETS = Buckets(NS)


class Vault(ServiceActor):
    """A sticky-active service that counts who opened it (its leadership key is exercised)."""

    service_name = "vault-service"
    sticky_active_group = "main"
    opened: ClassVar[list[Any]] = []

    @rpc
    async def open(self, params: Any) -> str:
        Vault.opened.append(params)
        return self.instance_id


class Limits(BaseModel):
    max_quantity: int


class Desk(ServiceActor):
    """Follows a configuration: its role reads the configuration bucket."""

    service_name = "desk-service"
    configuration_binding = ConfigurationBinding("desk", "limits", Limits)

    @rpc
    async def limit(self) -> int | None:
        return None if self.configuration is None else self.configuration.max_quantity


class Tape(ServiceActor):
    """Hears orders as core events (risk-service reads them from the order stream)."""

    service_name = "tape-service"
    heard: ClassVar[list[str]] = []

    @event("events.order.created", broadcast=True)  # a push consumer needs a plain subscriber
    async def on_order(self, payload: dict[str, Any]) -> None:
        Tape.heard.append(payload["order"]["symbol"])


SERVICES = (ManagementService, PricingService, RiskService, OrderService, Vault, Desk, Tape)


@pytest.fixture(scope="module")
def secured() -> Iterator[NatsServer]:
    roles = fleet_roles([grants_of(cls) for cls in SERVICES], NS)
    credentials = {role.name: Credential(password=secret(role.user)) for role in roles}
    with NatsServer(extra_config=render(roles, credentials, namespace=NS)) as server:
        yield server


def as_user(server: NatsServer, user: str, **extra: Any) -> ConnectionSettings:
    return ConnectionSettings(
        url=server.url, user=user, password=secret(user), initial_connect_timeout=5.0, **extra
    )


def instance_settings(server: NatsServer, user: str, **settings: Any) -> InstanceSettings:
    return InstanceSettings(
        nats=as_user(server, user),
        namespace=NS,
        heartbeat=HeartbeatSettings(ttl=2, interval=0.5),
        leadership=LeadershipSettings(ttl=2, interval=0.5, margin=0.5),
        settings=settings,
    )


@asynccontextmanager
async def fleet(server: NatsServer, *classes: type[ServiceActor]) -> AsyncIterator[Client]:
    """One instance of each class, each with its own credential; a `client` to call them."""
    extra = {PricingService: {"publish_every": 0.2}}
    async with ActorSystem() as system:
        for cls in classes:
            settings = instance_settings(server, cls.service_name, **extra.get(cls, {}))
            await start_instance(system, cls, settings)
        async with Client(nats=as_user(server, "client"), namespace=NS) as client:
            for cls in classes:
                await client.wait_for_instances(cls.service_name, 1)
            yield client


def denials(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "nats permission denied"]


class TestEachRoleDoesItsJob:
    """The showcase runs with one credential per service, and no subject it uses is refused."""

    async def test_the_showcase_with_one_credential_per_service(self, secured: NatsServer) -> None:
        with capture_logs() as logs:
            async with fleet(secured, *SERVICES) as client:
                order = await client.call(
                    "order-service",
                    "create_order",
                    {"symbol": "ACME", "side": "buy", "quantity": 10},
                )
                assert order["status"] == "accepted"
                # risk-service read events.order.created (published by order-service)
                # from the order stream, through its own consumer.
                with anyio.fail_after(5):
                    while not await client.call("risk-service", "get_positions", {}):
                        await anyio.lowlevel.checkpoint()
                positions = await client.call("risk-service", "get_positions", {})
                assert [p["symbol"] for p in positions] == ["ACME"]
                assert await client.call("vault-service", "open", {"by": "client"})
                admin = await connect(as_user(secured, "admin"))
                viewer = await connect(as_user(secured, "viewer"))
                try:
                    mgmt = ManagementClient(admin, namespace=NS)
                    created = await mgmt.create_service("audit-service", owner="a", version="1.0.0")
                    seen = ManagementClient(viewer, namespace=NS)
                    assert (await seen.get_service("audit-service")).revision == created.revision
                    assert {i.service_name for i in await seen.list_instances()} == {
                        cls.service_name for cls in SERVICES
                    }
                    await mgmt.delete_service("audit-service", created.revision)
                finally:
                    await admin.close()
                    await viewer.close()
        assert denials(logs) == []


class TestConfiguration:
    """A service bound to a configuration reads it with its own credential."""

    async def test_the_bound_value_and_its_change_arrive(self, secured: NatsServer) -> None:
        with capture_logs() as logs:
            async with fleet(secured, ManagementService, Desk) as client:
                admin = await connect(as_user(secured, "admin"))
                try:
                    mgmt = ManagementClient(admin, namespace=NS)
                    app = await mgmt.create_application("desk")
                    config = await mgmt.create_configuration(
                        app.application.id, "limits", {"max_quantity": 10}
                    )
                    await until(client, lambda limit: limit == 10)
                    await mgmt.update_configuration(
                        config.configuration.id, config.revision, config={"max_quantity": 20}
                    )
                    await until(client, lambda limit: limit == 20)
                finally:
                    await admin.close()
        assert denials(logs) == []


async def until(client: Client, check: Any) -> None:
    """Until desk-service's limit passes `check` (a pushed change: nothing to await)."""
    with anyio.fail_after(5):
        for _ in itertools.count():
            if check(await client.call("desk-service", "limit")):
                return
            await anyio.sleep(0.01)


class TestRefusedAtOnce:
    """What a role may not do fails with 403 PERMISSION_DENIED naming subject and user, not a
    timeout (the requests below would wait 30 s for one)."""

    async def test_a_viewer_may_not_delete(self, secured: NatsServer) -> None:
        viewer = await connect(as_user(secured, "viewer"))
        try:
            mgmt = ManagementClient(viewer, namespace=NS, timeout=30.0)
            with pytest.raises(ServiceError) as info:
                await mgmt.request("services", "delete", {"serviceName": "order-service"})
        finally:
            await viewer.close()
        error = info.value
        subject = SUBJECTS.mgmt("services", "delete")
        assert (error.status, error.code) == (403, "PERMISSION_DENIED")
        assert error.details == {"subject": subject, "user": "user viewer", "operation": "publish"}
        assert subject in error.message
        assert "viewer" in error.message

    async def test_a_viewer_may_not_call_a_service(self, secured: NatsServer) -> None:
        async with (
            fleet(secured, Vault),
            Client(nats=as_user(secured, "viewer"), namespace=NS) as viewer,
        ):
            with pytest.raises(ServiceError) as info:
                await viewer.call("vault-service", "open", {"by": "viewer"}, timeout=30.0)
        assert info.value.code == "PERMISSION_DENIED"
        assert info.value.details["subject"].startswith(f"{NS}.aegis.inst.vault-service.")
        assert info.value.details["user"] == "user viewer"

    async def test_a_reply_subscription_outside_the_private_inbox_fails_every_call(
        self, secured: NatsServer
    ) -> None:
        settings = as_user(secured, "client", inbox_prefix="_INBOX")
        off = DiscoverySettings(mode=DiscoveryMode.OFF)
        async with Client(nats=settings, namespace=NS, discovery=off) as client:
            with pytest.raises(ServiceError) as info:
                await client.call("vault-service", "open", {}, timeout=30.0)
        assert info.value.code == "PERMISSION_DENIED"
        assert info.value.details["operation"] == "subscribe"
        assert info.value.details["subject"].startswith("_INBOX.")

    async def test_a_bucket_the_role_may_not_read_fails_at_once_as_a_store_error(
        self, secured: NatsServer
    ) -> None:
        client = await connect(as_user(secured, "client"))
        try:
            js = client.jetstream(timeout=30.0)
            with pytest.raises(StorePermissionError) as info:
                await KVBucket(js, BUCKETS.definitions).get("order-service")
        finally:
            await client.close()
        error = info.value
        assert isinstance(error, StoreUnavailableError)  # retried like an unreachable store
        assert isinstance(error, PermissionDeniedError)
        assert error.subject.lower().startswith("$js.api.direct.get.kv_sec-service-definitions")
        assert error.user == "user client"


class TestRegistryAuthenticity:
    """The issue's hijack: a forged registry record and a subscription to another service's
    subjects, by a client and by another service's credential; the server refuses both."""

    @pytest.mark.parametrize("attacker", ["client", "order-service"])
    async def test_no_forged_record_and_no_foreign_subscription(
        self, secured: NatsServer, attacker: str
    ) -> None:
        async with fleet(secured, PricingService) as client:
            (real,) = await client.wait_for_instances("pricing-service", 1)
            forged_id = "pricing-service-deadbeef"
            nc = await connect(as_user(secured, attacker))
            try:
                refusals = Refusals(nc)
                record = kv_subject(BUCKETS.registry, instance_key("pricing-service", forged_id))
                await nc.publish(record, b'{"serviceName": "pricing-service"}')
                answered: list[str] = []

                async def answer(msg: Any) -> None:
                    answered.append(msg.subject)
                    await nc.publish(msg.reply, b'{"ok": true, "status": 200, "data": "forged"}')

                stolen = [
                    (SUBJECTS.instance_all(forged_id), None),
                    (SUBJECTS.instance_all(real), None),
                    (SUBJECTS.rpc_all("pricing-service"), "pricing-service"),
                ]
                for subject, queue in stolen:
                    await nc.subscribe(subject, queue=queue or "", cb=answer)
                await refusals.wait_for("publish", record)
                for subject, _ in stolen:
                    await refusals.wait_for("subscribe", subject)
                bucket = KVBucket(nc.jetstream(), BUCKETS.registry)
                assert await bucket.get(instance_key("pricing-service", forged_id)) is None
                quotes = [
                    await client.call("pricing-service", "get_price", {"symbol": "ACME"})
                    for _ in range(10)
                ]
                assert all(q["symbol"] == "ACME" for q in quotes)
                assert answered == []
            finally:
                await nc.close()


def order_created(symbol: str, quantity: int) -> bytes:
    order = {
        "id": f"order-{symbol}", "symbol": symbol, "side": "buy", "quantity": quantity,
        "price": 10.0, "status": "accepted", "reason": "ok", "createdAt": "2026-11-30T00:00:00Z",
    }  # fmt: skip
    return json.dumps({"order": order}).encode()


class TestStoredDataIsNoEvent:
    """A consumer's deliver subject is anyone's choice (the server checks nothing), and a
    consumer delivers to a literal subscription: a service handles only what was published
    on its subjects, never stored data a consumer delivers there."""

    async def test_a_push_consumer_aimed_at_an_event_handler_is_ignored(
        self, secured: NatsServer
    ) -> None:
        with capture_logs() as logs:
            heard = await self._inject_then_publish(secured)
        assert heard == ["ACME"]
        assert any(e["event"] == "message dropped: not on a subscribed subject" for e in logs)

    async def _inject_then_publish(self, secured: NatsServer) -> list[dict[str, Any]]:
        Tape.heard.clear()
        async with fleet(secured, Tape):
            # pricing-service may not publish events.order.created, but it may write its
            # own registry keys and create consumers on the registry.
            attacker = await connect(as_user(secured, "pricing-service"))
            orders = await connect(as_user(secured, "order-service"))
            try:
                js = attacker.jetstream()
                forged = kv_subject(BUCKETS.registry, instance_key("pricing-service", "x"))
                await js.publish(forged, order_created("GLOBEX", 1_000_000))
                consumer = await js.add_consumer(
                    kv_stream(BUCKETS.registry),
                    config=api.ConsumerConfig(
                        deliver_subject=SUBJECTS.event("events.order.created"),
                        filter_subject=forged,
                        ack_policy=api.AckPolicy.NONE,
                    ),
                )
                with anyio.fail_after(5):
                    for _ in itertools.count():  # the server's own count: nothing to await
                        info = await js.consumer_info(consumer.stream_name, consumer.name)
                        if info.delivered and info.delivered.consumer_seq:
                            break
                        await anyio.sleep(0.01)
                # A real event on the same subscription, after the forged one: once it
                # counts, the forged one was handled (or dropped) before it.
                await orders.publish(
                    SUBJECTS.event("events.order.created"), order_created("ACME", 5)
                )
                with anyio.fail_after(5):
                    for _ in itertools.count():
                        if "ACME" in Tape.heard:
                            return list(Tape.heard)
                        await anyio.sleep(0.01)
            finally:
                await attacker.close()
                await orders.close()
        raise AssertionError("unreachable")
