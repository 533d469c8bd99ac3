"""A service observed: its own metrics, `/metrics`, spans, trace ids in its logs.

docs/operations/observing.md shows parts of this file; the docs tests run it.
"""

from __future__ import annotations

import aiohttp
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from aegis_actors import (
    ActorSystem,
    Client,
    ConnectionSettings,
    Counter,
    Histogram,
    InstanceSettings,
    ServiceActor,
    disable_tracing,
    enable_tracing,
    rpc,
    serve_metrics,
    start_instance,
)


class OrderRequest(BaseModel):
    symbol: str
    quantity: int


class OrderDesk(ServiceActor):
    service_name = "order-desk"

    orders_placed = Counter("desk_orders", "Orders placed, by outcome.", ["outcome"])
    order_size = Histogram("desk_order_quantity", "Quantities ordered.", buckets=(10, 100, 1000))

    @rpc
    async def place(self, params: OrderRequest) -> str:
        outcome = "accepted" if params.quantity <= 100 else "rejected"
        self.order_size.observe(params.quantity)
        self.orders_placed.labels(outcome=outcome).inc()
        self.actor_log.info("order placed", outcome=outcome)  # with trace_id and method
        return outcome


def trace_in_memory() -> InMemorySpanExporter:
    """Spans for calls and handlers, kept in memory (in production: an OTLP exporter)."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    enable_tracing(provider)
    return spans


async def main(url: str = "nats://127.0.0.1:4222") -> None:
    spans = trace_in_memory()
    settings = InstanceSettings(nats=ConnectionSettings(url=url))
    try:
        async with serve_metrics(port=0) as metrics_url, ActorSystem() as system:
            await start_instance(system, OrderDesk, settings)
            async with Client(url=url) as client:
                await client.wait_for_instances("order-desk", 1)
                for quantity in (5, 50, 500):
                    await client.call(
                        "order-desk", "place", {"symbol": "ACME", "quantity": quantity}
                    )
            async with aiohttp.ClientSession() as http, http.get(metrics_url) as response:
                scraped = await response.text()
    finally:
        disable_tracing()
    for line in scraped.splitlines():
        if line.startswith("desk_orders_total") or (
            line.startswith("aegis_requests_total") and 'service="order-desk"' in line
        ):
            print(line)
    print(sorted({f"{span.kind.name} {span.name}" for span in spans.get_finished_spans()}))


# Output:
# aegis_requests_total{instance="order-desk-...",method="place",service="order-desk"} 3.0
# desk_orders_total{instance="order-desk-...",outcome="accepted",service="order-desk"} 2.0
# desk_orders_total{instance="order-desk-...",outcome="rejected",service="order-desk"} 1.0
# ['CLIENT order-desk/place', 'SERVER order-desk/place']
