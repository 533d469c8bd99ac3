"""Service classes that the config-file tests name in their TOML (`tests.fleet_services:...`)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from aegis_actors import ServiceActor, rpc


class Hello(ServiceActor):
    service_name = "hello"
    version = "1.0.0"

    @rpc
    async def hi(self) -> str:
        return f"hi from {self.instance_id}"


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
