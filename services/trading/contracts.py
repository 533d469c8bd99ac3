"""The contracts the trading services share: requests, replies and events, in one place.

Requests are strict (`Request`): `true` is not a quantity, `"5"` is not a
number and `1.0` is not an integer, so a client's wrong type is a 422 naming
the field instead of an order of quantity 1.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints

from aegis_actors import Timestamp, WireModel

Symbol = Annotated[str, StringConstraints(pattern=r"^[A-Z]{1,8}$")]
#: An order id: a ULID, as the order service makes them.
OrderId = Annotated[str, StringConstraints(pattern=r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]


class Request(WireModel):
    """A request's parameters: strict types (JSON numbers for numbers, not booleans or strings)."""

    model_config = ConfigDict(strict=True)


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderStatus(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


# -- pricing ----------------------------------------------------------------------


class PriceRequest(Request):
    symbol: Symbol


class PricesRequest(Request):
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


class RiskRequest(Request):
    symbol: Symbol
    side: Side
    quantity: int = Field(gt=0)
    price: float = Field(gt=0)


class RiskDecision(WireModel):
    approved: bool
    reason: str
    exposure: float = Field(description="Notional of the symbol's position after the order.")


class Limits(Request):
    max_order_notional: float = Field(gt=0)
    max_position_notional: float = Field(gt=0)


class Position(WireModel):
    symbol: Symbol
    quantity: int
    notional: float


# -- orders ---------------------------------------------------------------------------


class OrderRequest(Request):
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


class OrderLookup(Request):
    id: OrderId


class OrderList(Request):
    symbol: Symbol | None = None
    limit: int = Field(50, ge=1, le=1000)


class OrderCreated(WireModel):
    """Event `events.order.created` (accepted orders only)."""

    order: Order


# -- what every showcase service also answers ----------------------------------------


class Echo(Request):
    message: str = Field(max_length=10_000)


class Work(Request):
    milliseconds: int = Field(ge=0, le=5_000)


class WorkDone(WireModel):
    instance_id: str
    milliseconds: int


class Health(WireModel):
    service: str
    instance_id: str
    status: str
