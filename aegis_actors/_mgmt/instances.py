"""Reading service instances from the registry for `aegis.mgmt.instances.*`.

See docs/reference/management-api.md.
"""

from __future__ import annotations

from aegis_actors._buckets import Buckets
from aegis_actors._errors import ErrorCode, ServiceError
from aegis_actors._mgmt.models import InstanceList
from aegis_actors._registry.models import ServiceInstance
from aegis_actors._registry.store import RegistryStore
from aegis_actors._subjects import service_of
from aegis_actors._transport import JetStreamContext


class InstanceQueries:
    """The live instances, as the registry has them (read only: instances write their own)."""

    def __init__(self, registry: RegistryStore) -> None:
        self.registry = registry

    @classmethod
    async def open(cls, js: JetStreamContext, buckets: Buckets) -> InstanceQueries:
        return cls(await RegistryStore.open(js, buckets))

    async def list(self, service: str | None = None) -> InstanceList:
        """Every live instance (of `service`, if given), sorted by service and instance id."""
        return InstanceList(items=await self.registry.instances(service))

    async def get(self, instance_id: str) -> ServiceInstance:
        """One live instance.

        Raises:
            ServiceError: 404 NOT_FOUND when it is not registered (stopped, expired, never was).
        """
        instance = await self.registry.instance(service_of(instance_id), instance_id)
        if instance is None:
            raise ServiceError.of(
                ErrorCode.NOT_FOUND,
                f"no live instance {instance_id!r} in the registry",
                instanceId=instance_id,
            )
        return instance
