"""Core events: one instance of a service gets each event, or every instance (broadcast)."""

from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from orders import Order, OrderService

from aegis_actors import (
    ActorSystem,
    Client,
    ConnectionSettings,
    InstanceSettings,
    ServiceActor,
    event,
    start_instance,
)

# Where the handlers report, for this example's main() to count deliveries.
seen: MemoryObjectSendStream[str]


class Audit(ServiceActor):
    service_name = "audit"
    version = "1.0.0"

    @event("events.order.*")  # a queue group: each event reaches one audit instance
    async def on_order(self, order: Order) -> None:
        await seen.send(f"audit got order {order.id}")


class Dashboard(ServiceActor):
    service_name = "dashboard"
    version = "1.0.0"

    @event("events.order.created", broadcast=True)  # every dashboard instance
    async def on_created(self, payload: dict[str, Any]) -> None:
        await seen.send(f"dashboard got order {payload['id']}")


async def main(url: str) -> None:
    global seen
    seen, received = anyio.create_memory_object_stream[str](10)
    settings = InstanceSettings(nats=ConnectionSettings(url=url))
    with seen, received:
        async with ActorSystem() as system:
            for service in (Audit, Audit, Dashboard, Dashboard, OrderService):
                await start_instance(system, service, settings)
            async with Client(url=url) as client:
                params = {"symbol": "ACME", "quantity": 1}
                await client.call("order-service", "create_order", params)
            with anyio.fail_after(5):
                deliveries = sorted([await received.receive() for _ in range(3)])
    print("\n".join(deliveries))


# Output:
# audit got order 1
# dashboard got order 1
# dashboard got order 1
