"""`risk-service`: approves orders against notional limits and tracks positions.

Positions are built from the `events.order.created` stream (a durable
broadcast handler): every instance holds them all, and rebuilds them from the
stream when it starts.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from aegis_actors import Counter, Gauge, event, rpc
from services.trading.common import ShowcaseService
from services.trading.contracts import (
    Limits,
    OrderCreated,
    Position,
    RiskDecision,
    RiskRequest,
    Side,
)


class RiskSettings(BaseModel):
    """`[services.settings]` of risk-service."""

    max_order_notional: float = Field(1_000_000.0, gt=0)
    max_position_notional: float = Field(5_000_000.0, gt=0)


class RiskService(ShowcaseService):
    """Limits per order and per position; positions follow `events.order.created`."""

    service_name = "risk-service"
    version = "1.0.0"
    Settings = RiskSettings

    decisions = Counter("trading_risk_decisions", "Orders judged, by decision.", ["decision"])
    position_notional = Gauge(
        "trading_position_notional", "Notional of the position in a symbol, signed.", ["symbol"]
    )

    async def on_start(self) -> None:
        settings: RiskSettings = self.settings
        self.limits = Limits(
            max_order_notional=settings.max_order_notional,
            max_position_notional=settings.max_position_notional,
        )
        self.positions: dict[str, Position] = {}

    @rpc(idempotent=True)
    async def assess_risk(self, params: RiskRequest) -> RiskDecision:
        """Approve the order if it and the resulting position stay within the limits."""
        signed = params.quantity if params.side is Side.BUY else -params.quantity
        notional = params.quantity * params.price
        current = self.positions.get(params.symbol)
        after = abs(((current.quantity if current else 0) + signed) * params.price)
        if notional > self.limits.max_order_notional:
            self.decisions.labels(decision="rejected").inc()
            return RiskDecision(
                approved=False,
                reason=f"order notional {notional:,.2f} over {self.limits.max_order_notional:,.2f}",
                exposure=after,
            )
        if after > self.limits.max_position_notional:
            self.decisions.labels(decision="rejected").inc()
            return RiskDecision(
                approved=False,
                reason=f"position notional {after:,.2f} over "
                f"{self.limits.max_position_notional:,.2f}",
                exposure=after,
            )
        self.decisions.labels(decision="approved").inc()
        return RiskDecision(approved=True, reason="within limits", exposure=after)

    @rpc(idempotent=True)
    async def get_positions(self) -> list[Position]:
        """Positions seen so far by this instance, by symbol."""
        return [self.positions[s] for s in sorted(self.positions)]

    @rpc(idempotent=True)
    async def update_limits(self, params: Limits) -> Limits:
        """Replace this instance's limits."""
        self.limits = params
        return self.limits

    # Durable and broadcast: each instance reads the whole order stream from its
    # start when it starts, so its positions survive a restart of every instance.
    @event("events.order.created", durable=True, broadcast=True, deliver="all")
    async def on_order_created(self, event: OrderCreated) -> None:
        order = event.order
        signed = order.quantity if order.side is Side.BUY else -order.quantity
        current = self.positions.get(order.symbol)
        quantity = (current.quantity if current else 0) + signed
        position = self.positions[order.symbol] = Position(
            symbol=order.symbol, quantity=quantity, notional=round(quantity * order.price, 2)
        )
        self.position_notional.labels(symbol=order.symbol).set(position.notional)
