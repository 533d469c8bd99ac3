"""`pricing-service`: quotes that move with time, and `events.pricing.updated` on a timer."""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from aegis_actors import Counter, ErrorCode, ServiceError, rpc
from services.trading.common import ShowcaseService
from services.trading.contracts import PriceRequest, PricesRequest, PriceUpdated, Quote


class PricingSettings(BaseModel):
    """`[services.settings]` of pricing-service."""

    symbols: dict[str, float] = Field(
        default_factory=lambda: {"ACME": 100.0, "GLOBEX": 50.0, "INITECH": 20.0},
        description="Symbol -> reference price.",
    )
    spread: float = Field(0.02, gt=0, lt=1, description="Bid/ask spread, as a fraction.")
    swing: float = Field(0.05, ge=0, lt=1, description="How far prices drift, as a fraction.")
    publish_every: float = Field(
        1.0, ge=0, description="Seconds between price events; 0 publishes none."
    )


@dataclass(frozen=True, slots=True)
class _Publish:
    pass


class PricingService(ShowcaseService):
    """Quotes for a handful of symbols."""

    service_name = "pricing-service"
    published_events = ("events.pricing.updated",)
    version = "1.0.0"
    Settings = PricingSettings

    quotes_served = Counter("trading_quotes", "Quotes served, by symbol.", ["symbol"])

    async def on_start(self) -> None:
        self.config: PricingSettings = self.settings
        if self.config.publish_every > 0:
            self.actor_timer(self.config.publish_every, _Publish())

    def quote(self, symbol: str) -> Quote:
        """A price every instance agrees on: a function of the symbol and the time."""
        reference = self.config.symbols.get(symbol)
        if reference is None:
            raise ServiceError.of(
                ErrorCode.NOT_FOUND,
                f"no price for {symbol}",
                symbol=symbol,
                known=sorted(self.config.symbols),
            )
        phase = zlib.crc32(symbol.encode()) % 1000 / 1000 * 2 * math.pi
        mid = reference * (1 + self.config.swing * math.sin(time.time() / 60 + phase))
        half = mid * self.config.spread / 2
        self.quotes_served.labels(symbol=symbol).inc()
        return Quote(
            symbol=symbol, bid=round(mid - half, 4), ask=round(mid + half, 4), at=datetime.now(UTC)
        )

    @rpc(idempotent=True)
    async def get_price(self, params: PriceRequest) -> Quote:
        """The quote of one symbol."""
        return self.quote(params.symbol)

    @rpc(idempotent=True)
    async def get_prices(self, params: PricesRequest) -> list[Quote]:
        """Quotes of several symbols (all when none are named)."""
        return [self.quote(s) for s in params.symbols or sorted(self.config.symbols)]

    async def on_message(self, message: Any) -> Any:
        if isinstance(message, _Publish):
            quotes = [self.quote(s) for s in sorted(self.config.symbols)]
            await self.publish_event("events.pricing.updated", PriceUpdated(quotes=quotes))
            self.actor_timer(self.config.publish_every, _Publish())
            return None
        return await super().on_message(message)
