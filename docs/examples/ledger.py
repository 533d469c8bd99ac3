"""A sticky-active service: one ACTIVE instance takes the calls, a STANDBY takes over."""

from typing import Any

from aegis_actors import (
    ActorSystem,
    Client,
    ConnectionSettings,
    InstanceSettings,
    ServiceActor,
    ServiceError,
    rpc,
    start_instance,
)


class Ledger(ServiceActor):
    service_name = "ledger"
    version = "1.0.0"
    sticky_active_group = "main"  # a config file's `sticky_active_group` overrides it

    def __init__(self) -> None:
        self.entries: list[tuple[int, dict[str, Any]]] = []

    @rpc
    async def post(self, params: dict[str, Any]) -> dict[str, Any]:
        leadership = self.leadership
        if leadership is None or leadership.revision is None:  # not ACTIVE (any more)
            raise ServiceError(503, "SERVICE_UNAVAILABLE", "not the active ledger")
        # The fencing token: a database would keep the largest it has seen and
        # refuse writes that carry a smaller one (a former leader's).
        self.entries.append((leadership.revision, params))
        return {"instance": self.instance_id, "fencingToken": leadership.revision}

    async def on_leadership_changed(self, active: bool) -> None:
        self.actor_log.info("leadership", active=active)  # start or stop background work


async def main(url: str) -> None:
    settings = InstanceSettings(nats=ConnectionSettings(url=url))
    async with ActorSystem() as system:
        first = await start_instance(system, Ledger, settings)
        second = await start_instance(system, Ledger, settings)
        async with Client(url=url) as client:
            before = await client.call("ledger", "post", {"amount": 10})
            print(f"the first instance started leads: {before['instance'] == first.instance_id}")
            await system.stop(first.ref)  # graceful: the key is released at once
            await client.wait_for_instances("ledger")
            after = await client.call("ledger", "post", {"amount": 20})
            print(f"the standby took over: {after['instance'] == second.instance_id}")
            print(f"with a larger token: {after['fencingToken'] > before['fencingToken']}")


# Output:
# the first instance started leads: True
# the standby took over: True
# with a larger token: True
