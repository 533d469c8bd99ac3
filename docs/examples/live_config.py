"""The configuration service: an application, a configuration, a service that follows it."""

import anyio
from pydantic import BaseModel

from aegis_actors import (
    ActorSystem,
    Client,
    ConfigurationBinding,
    ConnectionSettings,
    InstanceSettings,
    ManagementClient,
    ManagementService,
    ServiceActor,
    rpc,
    start_instance,
)


class Limits(BaseModel):
    max_order_quantity: int


class LimitedOrders(ServiceActor):
    service_name = "limited-orders"
    version = "1.0.0"
    configuration_binding = ConfigurationBinding("trading", "order-limits", Limits)
    changed: anyio.Event  # set by this example's main(), to wait for the change

    async def on_configuration_changed(self, new: Limits, old: Limits | None) -> None:
        print(f"limit {old.max_order_quantity if old else None} -> {new.max_order_quantity}")
        self.changed.set()

    @rpc
    async def limit(self) -> int:
        limits: Limits = self.configuration  # read at start, replaced at each change
        return limits.max_order_quantity


async def main(url: str) -> None:
    settings = InstanceSettings(nats=ConnectionSettings(url=url))
    async with ActorSystem() as system:
        await start_instance(system, ManagementService, settings)  # serves aegis.mgmt.*
        async with Client(url=url) as client:
            mgmt = ManagementClient(client.nats)  # valid while the client is open
            app = await mgmt.create_application("trading", comments="the trading desk")
            limits = await mgmt.create_configuration(
                app.application.id, "order-limits", {"max_order_quantity": 1000}
            )
            LimitedOrders.changed = anyio.Event()
            await start_instance(system, LimitedOrders, settings)
            print(await client.call("limited-orders", "limit"))  # read at start
            await mgmt.update_configuration(
                limits.configuration.id, limits.revision, config={"max_order_quantity": 500}
            )
            await LimitedOrders.changed.wait()  # no restart: the running service is told
            print(await client.call("limited-orders", "limit"))
            history = await mgmt.configuration_history(limits.configuration.id)
            print([entry.configuration.config for entry in history])
            await mgmt.delete_application(app.application.id)  # and its configurations


# Output:
# 1000
# limit 1000 -> 500
# 500
# [{'max_order_quantity': 500}, {'max_order_quantity': 1000}]
