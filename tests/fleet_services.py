"""Service classes that the config-file tests name in their TOML (`tests.fleet_services:...`)."""

from __future__ import annotations

import anyio
from pydantic import BaseModel, Field

from aegis_actors import ServiceActor, rpc


class Hello(ServiceActor):
    service_name = "hello"
    version = "1.0.0"

    @rpc
    async def hi(self) -> str:
        return f"hi from {self.instance_id}"


class Stubborn(ServiceActor):
    """Takes as long as it may to stop: a second signal has to cut it short."""

    service_name = "stubborn"
    drain_timeout = 60.0

    async def on_stop(self) -> None:
        self.actor_log.info("stopping slowly")
        await anyio.sleep_forever()


class Limits(BaseModel):
    max_quantity: int = Field(gt=0)


class Configured(ServiceActor):
    service_name = "configured"
    Settings = Limits

    @rpc
    async def limit(self) -> int:
        settings: Limits = self.settings
        return settings.max_quantity


class NotAService:
    pass
