"""One service calls another through discovery; a Client picks instances by strategy."""

from pydantic import BaseModel

from aegis_actors import (
    ActorSystem,
    CallStrategy,
    Client,
    ConnectionSettings,
    DiscoverySettings,
    InstanceSettings,
    ServiceActor,
    rpc,
    start_instance,
)

PRICES = {"ACME": 101.5, "GLOBEX": 48.25}


class Symbol(BaseModel):
    symbol: str


class PricingService(ServiceActor):
    service_name = "pricing-service"
    version = "1.0.0"

    @rpc(idempotent=True)  # reading a price twice is harmless
    async def get_price(self, params: Symbol) -> float:
        return PRICES[params.symbol]


class QuoteDesk(ServiceActor):
    service_name = "quote-desk"
    version = "1.0.0"

    @rpc(max_concurrency=8)  # waits on another service: let calls overlap
    async def quote(self, params: Symbol) -> dict[str, object]:
        price = await self.call(
            "pricing-service", "get_price", {"symbol": params.symbol}, timeout=2.0
        )
        return {"symbol": params.symbol, "price": price}


async def main(url: str) -> None:
    settings = InstanceSettings(nats=ConnectionSettings(url=url))
    async with ActorSystem() as system:
        for _ in range(2):
            await start_instance(system, PricingService, settings)
        await start_instance(system, QuoteDesk, settings)
        discovery = DiscoverySettings(strategies={"pricing-service": CallStrategy.ROUND_ROBIN})
        async with Client(url=url, discovery=discovery) as client:
            await client.wait_for_instances("pricing-service", 2)
            print(await client.call("quote-desk", "quote", {"symbol": "ACME"}))
            for _ in range(4):
                await client.call("pricing-service", "get_price", {"symbol": "GLOBEX"})
            stats = client.statistics()
            print(f"calls={stats.calls} retries={stats.retries} failed={stats.failed}")
            print(sorted(s.calls for s in stats.instances.values()))


# Output:
# {'symbol': 'ACME', 'price': 101.5}
# calls=5 retries=0 failed=0
# [1, 2, 2]
