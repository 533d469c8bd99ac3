"""Every KV bucket and key pattern aegis uses, in one place.

| bucket | keys | what |
| --- | --- | --- |
| `service-registry` | `service-instances.{serviceName}.{instanceId}` | live instances |
| `service-definitions` | `{serviceName}` | service definitions, never expire |
| `aegis-config` | see `aegis_actors.mgmt.configs` | applications and configurations |

A non-empty namespace prefixes the bucket names (`{ns}-service-registry`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aegis_actors.subjects import check_namespace

INSTANCE_KEY_PREFIX: Final = "service-instances"


@dataclass(frozen=True, slots=True)
class Buckets:
    """Bucket names within one namespace."""

    namespace: str = ""

    def __post_init__(self) -> None:
        check_namespace(self.namespace)

    def _name(self, base: str) -> str:
        return f"{self.namespace}-{base}" if self.namespace else base

    @property
    def registry(self) -> str:
        return self._name("service-registry")

    @property
    def definitions(self) -> str:
        return self._name("service-definitions")

    @property
    def config(self) -> str:
        return self._name("aegis-config")


def instance_key(service: str, instance_id: str) -> str:
    return f"{INSTANCE_KEY_PREFIX}.{service}.{instance_id}"


def instance_keys(service: str | None = None) -> str:
    """Key filter for the instances of one service, or of all services."""
    return f"{INSTANCE_KEY_PREFIX}.{service}.*" if service else f"{INSTANCE_KEY_PREFIX}.>"


def parse_instance_key(key: str) -> tuple[str, str] | None:
    """`(serviceName, instanceId)` of a registry key, or None if it is not one."""
    parts = key.split(".")
    if len(parts) != 3 or parts[0] != INSTANCE_KEY_PREFIX:
        return None
    return parts[1], parts[2]
