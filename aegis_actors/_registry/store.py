"""Reading and creating the registry bucket."""

from __future__ import annotations

from pydantic import ValidationError

from aegis_actors._buckets import Buckets, instance_key, instance_keys
from aegis_actors._kv import BucketSpec, KVBucket
from aegis_actors._registry.models import ServiceInstance
from aegis_actors._transport import JetStreamContext

#: Expiry markers stay this long (watchers see an expiry as a removal through them);
#: a re-registration writes over them.
MARKER_TTL = 60.0


def registry_bucket_spec(buckets: Buckets) -> BucketSpec:
    return BucketSpec(
        name=buckets.registry,
        description="aegis: live service instances (per-key TTL, kept alive by heartbeats)",
        history=1,
        per_key_ttl=True,
        marker_ttl=MARKER_TTL,
    )


class RegistryStore:
    """Read access to the instances in the registry."""

    def __init__(self, bucket: KVBucket) -> None:
        self.bucket = bucket

    @classmethod
    async def open(cls, js: JetStreamContext, buckets: Buckets) -> RegistryStore:
        return cls(await KVBucket.ensure(js, registry_bucket_spec(buckets)))

    async def instances(self, service: str | None = None) -> list[ServiceInstance]:
        """Live instances (of one service, or all), sorted by service and instance id.

        Records that do not parse are skipped: one bad writer must not hide the rest.
        """
        found = []
        for entry in await self.bucket.entries(instance_keys(service)):
            try:
                found.append(ServiceInstance.model_validate_json(entry.value))
            except ValidationError:
                continue
        return sorted(found, key=lambda i: (i.service_name, i.instance_id))

    async def instance(self, service: str, instance_id: str) -> ServiceInstance | None:
        entry = await self.bucket.get(instance_key(service, instance_id))
        if entry is None:
            return None
        try:
            return ServiceInstance.model_validate_json(entry.value)
        except ValidationError:
            return None
