"""Binding a service to a configuration: what the service declares, and what it is told."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aegis_actors._configuration.models import APPLICATION_NAME, CONFIGURATION_NAME


@dataclass(frozen=True, slots=True)
class ConfigurationBinding:
    """Which configuration a service follows, and the model its value must fit.

    Example:

        class Limits(BaseModel):
            max_order_quantity: int

        class OrderService(ServiceActor):
            service_name = "order-service"
            configuration_binding = ConfigurationBinding("trading", "order-limits", Limits)

            async def on_configuration_changed(self, new: Limits | None, old: Any) -> None:
                self.actor_log.info("limits changed", new=new)
    """

    application: str
    name: str
    model: type[BaseModel] | None = None
    """Validates the value; without it the service gets the JSON object as a dict."""


class ConfigurationBindingSettings(BaseModel):
    """`[services.configuration]`: bind the service to a configuration (overrides the class)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    application: str = Field(pattern=APPLICATION_NAME, description="The application's name.")
    name: str = Field(pattern=CONFIGURATION_NAME, description="The configuration's name in it.")


@dataclass(frozen=True, slots=True)
class ConfigurationChanged:
    """Told to the service when its configuration changes (after validation)."""

    new: Any
    old: Any
    revision: int


@dataclass(frozen=True, slots=True)
class BoundValue:
    """The bound configuration as the configuration actor last accepted it (the cell it writes)."""

    value: Any = None
    """The validated value (None before the configuration exists)."""
    revision: int = 0
    """Its KV revision (0 before any)."""
