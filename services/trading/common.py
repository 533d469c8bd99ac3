"""`echo`, `health` and `simulate_work`: what every showcase service answers."""

from __future__ import annotations

import anyio

from aegis_actors import ServiceActor, rpc
from services.trading.contracts import Echo, Health, Work, WorkDone


class ShowcaseService(ServiceActor):
    """A ServiceActor with the showcase's common methods."""

    @rpc(idempotent=True)
    async def echo(self, params: Echo) -> Echo:
        """Answer the message back."""
        return params

    @rpc(name="health", idempotent=True)
    async def health_report(self) -> Health:
        """Who answered, and in what state."""
        return Health(
            service=self.service_name,
            instance_id=self.instance_id,
            status=self.instance_status.value,
        )

    @rpc(max_concurrency=32)
    async def simulate_work(self, params: Work) -> WorkDone:
        """Wait `milliseconds`, as an I/O-bound call would (up to 32 at once)."""
        await anyio.sleep(params.milliseconds / 1000)
        return WorkDone(instance_id=self.instance_id, milliseconds=params.milliseconds)
