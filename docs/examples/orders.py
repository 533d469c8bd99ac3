"""A service in more detail: models, error replies, statuses, settings, the request."""

from pydantic import BaseModel, Field

from aegis_actors import (
    ActorSystem,
    Client,
    ConnectionSettings,
    InstanceSettings,
    Reply,
    ServiceActor,
    ServiceError,
    current_request,
    rpc,
    start_instance,
)


class OrderSettings(BaseModel):
    max_quantity: int = 1_000


class PlaceOrder(BaseModel):
    symbol: str = Field(pattern=r"^[A-Z]{1,8}$")
    quantity: int = Field(gt=0)


class OrderId(BaseModel):
    id: int


class Order(BaseModel):
    id: int
    symbol: str
    quantity: int


class OrderService(ServiceActor):
    service_name = "order-service"
    version = "1.0.0"
    Settings = OrderSettings  # the config file's [services.settings], checked at start

    def __init__(self) -> None:
        self.orders: dict[int, Order] = {}

    @rpc
    async def create_order(self, params: PlaceOrder) -> Reply:
        """Place an order (this line is the method's description in $SRV.INFO)."""
        if params.quantity > self.settings.max_quantity:
            raise ServiceError(
                422,
                "VALIDATION_ERROR",
                f"quantity is over {self.settings.max_quantity}",
                {"field": "quantity", "value": params.quantity},
            )
        order = Order(id=len(self.orders) + 1, symbol=params.symbol, quantity=params.quantity)
        self.orders[order.id] = order
        await self.publish_event("events.order.created", order)  # carries the trace id
        return Reply(order, status=201)

    @rpc
    async def get_order(self, params: OrderId) -> Order:
        request = current_request()  # None outside a handler
        assert request is not None
        self.actor_log.info("get_order", trace_id=request.trace_id, left=request.remaining())
        order = self.orders.get(params.id)
        if order is None:
            raise ServiceError(404, "NOT_FOUND", f"no order {params.id}")
        return order

    async def health(self) -> bool:
        return len(self.orders) < 1_000_000  # False: UNHEALTHY at the next heartbeat


async def main(url: str) -> None:
    settings = InstanceSettings(nats=ConnectionSettings(url=url), settings={"max_quantity": 500})
    async with ActorSystem() as system:
        running = await start_instance(system, OrderService, settings)
        async with Client(url=url) as client:
            order = {"symbol": "ACME", "quantity": 10}
            print(await client.call("order-service", "create_order", order, envelope=True))
            print(await client.call("order-service", "get_order", {"id": 1}))
            for method, params in [
                ("create_order", {"symbol": "ACME", "quantity": 5_000}),
                ("create_order", {"symbol": "acme", "quantity": 1}),
                ("get_order", {"id": 7}),
                ("cancel_order", {"id": 1}),
            ]:
                try:
                    await client.call("order-service", method, params)
                except ServiceError as exc:
                    print(exc.status, exc.code, exc.details.get("field", "-"))
        await system.stop(running.ref)  # graceful: deregister, drain, close


# Output:
# {'ok': True, 'status': 201, 'data': {'id': 1, 'symbol': 'ACME', 'quantity': 10}}
# {'id': 1, 'symbol': 'ACME', 'quantity': 10}
# 422 VALIDATION_ERROR quantity
# 422 VALIDATION_ERROR symbol
# 404 NOT_FOUND -
# 404 NOT_FOUND -
