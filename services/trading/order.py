"""`order-service`: places orders with a price from pricing and an approval from risk."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field
from ulid import ULID

from aegis_actors import BucketSpec, Counter, ErrorCode, Histogram, KVBucket, ServiceError, rpc
from services.trading.common import ShowcaseService
from services.trading.contracts import (
    Order,
    OrderCreated,
    OrderList,
    OrderLookup,
    OrderRequest,
    OrderStatus,
    Quote,
    RiskDecision,
    Side,
)


class OrderSettings(BaseModel):
    """`[services.settings]` of order-service."""

    call_timeout: float = Field(2.0, gt=0, description="Seconds for each call to pricing/risk.")


class OrderService(ShowcaseService):
    """Orders, kept in the `orders` bucket so that any instance can answer for any order."""

    service_name = "order-service"
    published_events = ("events.order.created",)
    own_buckets = ("orders",)
    version = "1.0.0"
    Settings = OrderSettings

    orders_placed = Counter("trading_orders", "Orders placed, by outcome.", ["outcome"])
    quote_age = Histogram(
        "trading_quote_age_seconds",
        "Age of the quote an order is priced with, once risk has judged the order.",
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    )

    async def on_start(self) -> None:
        self.config: OrderSettings = self.settings
        self.orders = await KVBucket.ensure(
            self.nats.jetstream(timeout=self.actor_instance.kv_timeout),
            BucketSpec(
                name=self.actor_instance.buckets.named("orders"),
                description="aegis showcase: orders placed through order-service",
            ),
        )

    @rpc(max_concurrency=16)
    async def create_order(self, params: OrderRequest) -> Order:
        """Price the order, have risk approve it, keep it, and announce it if accepted."""
        quote = Quote.model_validate(
            await self.call(
                "pricing-service",
                "get_price",
                {"symbol": params.symbol},
                timeout=self.config.call_timeout,
            )
        )
        price = quote.ask if params.side is Side.BUY else quote.bid
        decision = RiskDecision.model_validate(
            await self.call(
                "risk-service",
                "assess_risk",
                {
                    "symbol": params.symbol,
                    "side": params.side,
                    "quantity": params.quantity,
                    "price": price,
                },
                timeout=self.config.call_timeout,
            )
        )
        now = datetime.now(UTC)
        self.quote_age.observe((now - quote.at).total_seconds())
        order = Order(
            id=str(ULID()),
            symbol=params.symbol,
            side=params.side,
            quantity=params.quantity,
            price=price,
            status=OrderStatus.ACCEPTED if decision.approved else OrderStatus.REJECTED,
            reason=decision.reason,
            created_at=now,
        )
        await self.orders.create(order.id, order.model_dump_json().encode())
        self.orders_placed.labels(outcome=order.status.value).inc()
        if decision.approved:
            # Stored in the order stream before the caller hears of it; the order id
            # is the event id, so a retried publish is stored once.
            await self.publish_event(
                "events.order.created", OrderCreated(order=order), durable=True, event_id=order.id
            )
        return order

    @rpc(idempotent=True)
    async def get_order(self, params: OrderLookup) -> Order:
        """One order by id."""
        entry = await self.orders.get(params.id) if _is_key(params.id) else None
        if entry is None:
            raise ServiceError.of(ErrorCode.NOT_FOUND, f"no order {params.id}", id=params.id)
        return Order.model_validate_json(entry.value)

    @rpc(idempotent=True)
    async def list_orders(self, params: OrderList) -> list[Order]:
        """The newest orders first, optionally of one symbol."""
        orders = [Order.model_validate_json(e.value) for e in await self.orders.entries()]
        if params.symbol is not None:
            orders = [o for o in orders if o.symbol == params.symbol]
        return sorted(orders, key=lambda o: o.id, reverse=True)[: params.limit]


def _is_key(value: str) -> bool:
    return value.isalnum() and len(value) <= 64
