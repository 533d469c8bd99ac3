"""The contracts the trading services share: requests, replies and events, in one place."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from aegis_actors import Timestamp, WireModel

Symbol = Annotated[str, StringConstraints(pattern=r"^[A-Z]{1,8}$")]


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderStatus(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


# -- pricing ----------------------------------------------------------------------


class PriceRequest(WireModel):
    symbol: Symbol


class PricesRequest(WireModel):
    symbols: list[Symbol] | None = Field(None, description="All symbols when omitted.")


class Quote(WireModel):
    symbol: Symbol
    bid: float
    ask: float
    at: Timestamp

    @property
    def mid(self) -> float:
        return round((self.bid + self.ask) / 2, 4)


class PriceUpdated(WireModel):
    """Event `events.pricing.updated`."""

    quotes: list[Quote]


# -- risk -----------------------------------------------------------------------------


class RiskRequest(WireModel):
    symbol: Symbol
    side: Side
    quantity: int = Field(gt=0)
    price: float = Field(gt=0)


class RiskDecision(WireModel):
    approved: bool
    reason: str
    exposure: float = Field(description="Notional of the symbol's position after the order.")


class Limits(WireModel):
    max_order_notional: float = Field(gt=0)
    max_position_notional: float = Field(gt=0)


class Position(WireModel):
    symbol: Symbol
    quantity: int
    notional: float


# -- orders ---------------------------------------------------------------------------


class OrderRequest(WireModel):
    symbol: Symbol
    side: Side
    quantity: int = Field(gt=0, le=1_000_000)


class Order(WireModel):
    id: str
    symbol: Symbol
    side: Side
    quantity: int
    price: float
    status: OrderStatus
    reason: str
    created_at: Timestamp


class OrderLookup(WireModel):
    id: str


class OrderList(WireModel):
    symbol: Symbol | None = None
    limit: int = Field(50, ge=1, le=1000)


class OrderCreated(WireModel):
    """Event `events.order.created` (accepted orders only)."""

    order: Order


# -- what every showcase service also answers ----------------------------------------


class Echo(WireModel):
    message: str = Field(max_length=10_000)


class Work(WireModel):
    milliseconds: int = Field(ge=0, le=5_000)


class WorkDone(WireModel):
    instance_id: str
    milliseconds: int


class Health(WireModel):
    service: str
    instance_id: str
    status: str
