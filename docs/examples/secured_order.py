"""A service that declares what it publishes and owns, so `aegis auth` can grant exactly that.

`aegis auth` reads `published_events` and `own_buckets` from the class: the
service role may publish those event subjects and use those buckets, and
nothing else (see docs/operations/securing.md).
"""

from aegis_actors import ServiceActor, rpc


class OrderService(ServiceActor):
    service_name = "order-service"
    published_events = ("events.order.created",)  # publish_event refuses others
    own_buckets = ("orders",)  # opened as buckets.named("orders")

    @rpc
    async def create_order(self, params: dict[str, object]) -> dict[str, object]:
        await self.publish_event("events.order.created", params)
        return params
