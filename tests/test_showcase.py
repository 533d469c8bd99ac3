"""The trading showcase services: prices, risk decisions, orders, events, the common methods."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from pydantic import ValidationError

from aegis_actors import (
    ActorSystem,
    Client,
    InstanceSettings,
    ServiceError,
    Subjects,
    start_instance,
)
from aegis_actors._wire import decode_reply, from_validation_error
from services.trading.contracts import (
    Limits,
    OrderList,
    OrderLookup,
    OrderRequest,
    RiskRequest,
    Work,
)
from services.trading.order import OrderService
from services.trading.pricing import PricingService
from services.trading.risk import RiskService

pytestmark = pytest.mark.nats


@asynccontextmanager
async def fleet(
    settings: InstanceSettings, nats_url: str, **extra: dict[str, Any]
) -> AsyncIterator[Client]:
    """Two pricing, two risk and two order instances, and a client to call them."""
    pricing = settings.model_copy(
        update={"settings": {"publish_every": 0, **extra.get("pricing", {})}}
    )
    risk = settings.model_copy(
        update={"settings": {"max_order_notional": 10_000.0, "max_position_notional": 15_000.0}}
    )
    async with ActorSystem() as system:
        for cls, options in (
            (PricingService, pricing),
            (RiskService, risk),
            (OrderService, settings),
        ):
            for _ in range(2):
                await start_instance(system, cls, options)
        async with Client(url=nats_url, namespace=settings.namespace) as client:
            for service in ("pricing-service", "risk-service", "order-service"):
                await client.wait_for_instances(service, 2)
            yield client


class TestPricing:
    """Quotes come from a function of symbol and time, so every instance agrees."""

    async def test_quotes_and_unknown_symbols(
        self, instance_settings: InstanceSettings, nats_url: str
    ) -> None:
        async with fleet(instance_settings, nats_url) as client:
            quote = await client.call("pricing-service", "get_price", {"symbol": "ACME"})
            assert quote["bid"] < quote["ask"]
            assert abs((quote["bid"] + quote["ask"]) / 2 - 100) <= 100 * 0.05 + 1
            quotes = await client.call("pricing-service", "get_prices", {})
            assert [q["symbol"] for q in quotes] == ["ACME", "GLOBEX", "INITECH"]
            with pytest.raises(ServiceError) as info:
                await client.call("pricing-service", "get_price", {"symbol": "NOPE"})
            assert info.value.status == 404
            assert info.value.details["known"] == ["ACME", "GLOBEX", "INITECH"]
            with pytest.raises(ServiceError) as info:
                await client.call("pricing-service", "get_price", {"symbol": "lower"})
            assert info.value.code == "VALIDATION_ERROR"


class TestOrders:
    """An order is priced, judged by risk, kept in KV and announced when accepted."""

    async def test_accepted_and_rejected_orders_and_positions(
        self, instance_settings: InstanceSettings, nats_url: str
    ) -> None:
        async with fleet(instance_settings, nats_url) as client:
            accepted = await client.call(
                "order-service", "create_order", {"symbol": "ACME", "side": "buy", "quantity": 50}
            )
            assert accepted["status"] == "accepted"
            assert accepted["price"] > 0
            too_big = await client.call(
                "order-service", "create_order", {"symbol": "ACME", "side": "buy", "quantity": 500}
            )
            assert too_big["status"] == "rejected"
            assert "order notional" in too_big["reason"]
            # Any instance answers for any order: the orders live in KV.
            for _ in range(4):
                got = await client.call("order-service", "get_order", {"id": accepted["id"]})
                assert got == accepted
            orders = await client.call("order-service", "list_orders", {})
            assert [o["id"] for o in orders] == [too_big["id"], accepted["id"]]
            with pytest.raises(ServiceError) as info:
                await client.call(
                    "order-service", "get_order", {"id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}
                )
            assert info.value.status == 404
            with pytest.raises(ServiceError) as info:
                await client.call("order-service", "get_order", {"id": "nope"})
            assert (info.value.status, info.value.details["field"]) == (422, "id")
            # Both risk instances saw the event (broadcast), whichever answers.
            with anyio.fail_after(5):
                for _ in range(2):
                    while not await client.call("risk-service", "get_positions", {}):
                        await anyio.lowlevel.checkpoint()
            for _ in range(4):
                (position,) = await client.call("risk-service", "get_positions", {})
                assert position["quantity"] == 50

    async def test_position_limits_count_earlier_orders(
        self, instance_settings: InstanceSettings, nats_url: str
    ) -> None:
        async with fleet(instance_settings, nats_url) as client:
            # 180 GLOBEX (47.5-52.5 as prices move) is 8,550-9,450: under the 10,000
            # order limit; twice that is 17,100 or more: over the 15,000 position limit.
            order = {"symbol": "GLOBEX", "side": "buy", "quantity": 180}
            first = await client.call("order-service", "create_order", order)
            assert first["status"] == "accepted"
            assess = {**order, "price": first["price"]}
            # Each risk instance learns of the first order from its event: until
            # both have, one of them may still approve.
            with anyio.fail_after(10):
                decisions = [await client.call("risk-service", "assess_risk", assess)]
                while decisions[-1]["approved"] or len(decisions) < 4:
                    decisions.append(await client.call("risk-service", "assess_risk", assess))
                    if decisions[-1]["approved"]:
                        decisions = decisions[-1:]
            assert all(not d["approved"] for d in decisions[-4:])
            assert "position notional" in decisions[-1]["reason"]


class TestCommonMethods:
    """echo, health and simulate_work on every showcase service."""

    async def test_echo_health_and_work(
        self, instance_settings: InstanceSettings, nats_url: str
    ) -> None:
        async with fleet(instance_settings, nats_url) as client:
            assert await client.call("risk-service", "echo", {"message": "hi"}) == {"message": "hi"}
            health = await client.call("pricing-service", "health", {})
            assert health["service"] == "pricing-service"
            assert health["status"] == "ACTIVE"
            done = await client.call("order-service", "simulate_work", {"milliseconds": 1})
            assert done["milliseconds"] == 1
            with pytest.raises(ServiceError) as info:
                await client.call("order-service", "simulate_work", {"milliseconds": 10_000})
            assert info.value.code == "VALIDATION_ERROR"


class TestRiskRestart:
    """Positions come from the order stream: they survive a restart of every risk instance."""

    async def test_positions_after_a_full_risk_restart_equal_those_before(
        self, instance_settings: InstanceSettings, nats_url: str
    ) -> None:
        namespace = instance_settings.namespace
        pricing = instance_settings.model_copy(update={"settings": {"publish_every": 0}})
        risk = instance_settings.model_copy(
            update={"settings": {"max_order_notional": 1e6, "max_position_notional": 1e7}}
        )

        async def positions(client: Client, instance_id: str) -> list[dict[str, Any]]:
            subject = Subjects(namespace).instance(instance_id, "get_positions")
            reply = await client.nats.request(subject, b"{}", timeout=5)
            data, _ = decode_reply(reply.data)
            return list(data)

        async def settled(client: Client, ids: list[str], expected: Any) -> None:
            # Each instance replays the stream on its own: wait until all have.
            with anyio.fail_after(10):
                for instance_id in ids:
                    while await positions(client, instance_id) != expected:
                        await anyio.lowlevel.checkpoint()

        async with ActorSystem() as system:
            await start_instance(system, PricingService, pricing)
            await start_instance(system, OrderService, instance_settings)
            first = [await start_instance(system, RiskService, risk) for _ in range(2)]
            async with Client(url=nats_url, namespace=namespace) as client:
                await client.wait_for_instances("order-service", 1)
                await client.wait_for_instances("risk-service", 2)
                for symbol, side, quantity in (
                    ("ACME", "buy", 100), ("GLOBEX", "sell", 30), ("ACME", "sell", 40),
                ):  # fmt: skip
                    order = {"symbol": symbol, "side": side, "quantity": quantity}
                    placed = await client.call("order-service", "create_order", order)
                    assert placed["status"] == "accepted"
                before: list[dict[str, Any]] = []
                expected = [("ACME", 60), ("GLOBEX", -30)]
                with anyio.fail_after(10):
                    while [(p["symbol"], p["quantity"]) for p in before] != expected:
                        before = await positions(client, first[0].instance_id)
                        await anyio.lowlevel.checkpoint()
                await settled(client, [r.instance_id for r in first], before)

                for running in first:
                    await system.stop(running.ref)
                again = [await start_instance(system, RiskService, risk) for _ in range(2)]
                await settled(client, [r.instance_id for r in again], before)


class TestStrictRequests:
    """Showcase requests are strict: a boolean is not a number, a string not an integer."""

    @pytest.mark.parametrize(
        ("model", "body", "field"),
        [
            (OrderRequest, {"symbol": "ACME", "side": "buy", "quantity": True}, "quantity"),
            (OrderRequest, {"symbol": "ACME", "side": "buy", "quantity": 1.0}, "quantity"),
            (OrderRequest, {"symbol": "ACME", "side": "buy", "quantity": "5"}, "quantity"),
            (OrderList, {"limit": True}, "limit"),
            (Limits, {"maxOrderNotional": True, "maxPositionNotional": 5}, "maxOrderNotional"),
            (RiskRequest, {"symbol": "ACME", "side": "buy", "quantity": 1, "price": "2"}, "price"),
            (Work, {"milliseconds": False}, "milliseconds"),
            (OrderLookup, {"id": "x" * 10_000}, "id"),
        ],
    )
    def test_a_wrong_type_is_a_422_naming_the_field(
        self, model: type[Any], body: dict[str, Any], field: str
    ) -> None:
        with pytest.raises(ValidationError) as caught:
            model.model_validate_json(json.dumps(body))
        error = from_validation_error(caught.value)
        assert (error.status, error.details["field"]) == (422, field)

    def test_numbers_are_still_numbers(self) -> None:
        assert (
            OrderRequest.model_validate_json(
                '{"symbol": "ACME", "side": "sell", "quantity": 5}'
            ).quantity
            == 5
        )
        assert (
            Limits.model_validate_json(
                '{"maxOrderNotional": 5, "maxPositionNotional": 5.5}'
            ).max_order_notional
            == 5.0
        )

    async def test_an_order_of_quantity_true_is_refused_and_not_stored(
        self, instance_settings: InstanceSettings, nats_url: str
    ) -> None:
        async with fleet(instance_settings, nats_url) as client:
            with pytest.raises(ServiceError) as info:
                await client.call(
                    "order-service",
                    "create_order",
                    {"symbol": "ACME", "side": "buy", "quantity": True},
                )
            assert (info.value.status, info.value.details["field"]) == (422, "quantity")
            assert await client.call("order-service", "list_orders", {}) == []
