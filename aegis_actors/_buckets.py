"""Every KV bucket and key pattern aegis uses, in one place.

| bucket | keys | what |
| --- | --- | --- |
| `service-registry` | `service-instances.{serviceName}.{instanceId}` | live instances |
| `service-registry` | `service-leadership.{serviceName}.{group}` | the ACTIVE one of a group |
| `service-definitions` | `{serviceName}` | service definitions, never expire |
| `aegis-config` | `apps.{id}`, `app-names.{name}` | applications and their name index |
| `aegis-config` | `configs.{id}`, `config-names.{appId}.{name}` | configurations, name index |
| `aegis-event-dedupe` | `{serviceName}.{handler}.{eventId}` | events finished (per-key TTL) |

A bucket is the stream `KV_{bucket}`; key `k` is written on `$KV.{bucket}.k`.

And the streams of durable events (docs/guides/events.md):

| stream | subjects | what |
| --- | --- | --- |
| `events-{domain}` | `events.{domain}.>` | the events of one domain |
| `aegis-dead-letters` | `aegis.dead.{serviceName}.{handler}` | events their handler gave up on |

A non-empty namespace prefixes the bucket and stream names (`{ns}-service-registry`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aegis_actors._subjects import check_namespace

INSTANCE_KEY_PREFIX: Final = "service-instances"
LEADERSHIP_KEY_PREFIX: Final = "service-leadership"


@dataclass(frozen=True, slots=True)
class Buckets:
    """Bucket names within one namespace."""

    namespace: str = ""

    def __post_init__(self) -> None:
        check_namespace(self.namespace)

    def _name(self, base: str) -> str:
        return f"{self.namespace}-{base}" if self.namespace else base

    def named(self, base: str) -> str:
        """A bucket of a service's own (`ServiceActor.own_buckets`), in this namespace."""
        return self._name(base)

    @property
    def registry(self) -> str:
        return self._name("service-registry")

    @property
    def definitions(self) -> str:
        return self._name("service-definitions")

    @property
    def configuration(self) -> str:
        return self._name("aegis-config")

    @property
    def event_dedupe(self) -> str:
        return self._name("aegis-event-dedupe")

    def event_stream(self, domain: str) -> str:
        """The stream aegis makes for the events of `domain`."""
        return self._name(f"events-{domain}")

    @property
    def dead_letters(self) -> str:
        """The stream of dead letters."""
        return self._name("aegis-dead-letters")


def kv_stream(bucket: str) -> str:
    """The JetStream stream that holds a bucket (`KV_{bucket}`)."""
    return f"KV_{bucket}"


def kv_subject(bucket: str, key: str) -> str:
    """The subject a key is written on (`$KV.{bucket}.{key}`; `key` may be a filter)."""
    return f"$KV.{bucket}.{key}"


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


def leadership_key(service: str, group: str) -> str:
    """The key whose holder is the ACTIVE instance of `group` (a sticky-active group)."""
    return f"{LEADERSHIP_KEY_PREFIX}.{service}.{group}"


# -- aegis-config: applications and configurations ---------------------------


def application_key(application_id: str) -> str:
    return f"apps.{application_id}"


def application_name_key(name: str) -> str:
    return f"app-names.{name}"


def configuration_key(configuration_id: str) -> str:
    return f"configs.{configuration_id}"


def configuration_name_key(application_id: str, name: str) -> str:
    return f"config-names.{application_id}.{name}"


def configuration_names(application_id: str | None = None) -> str:
    """Key filter for the configuration names of one application, or of all."""
    return f"config-names.{application_id}.*" if application_id else "config-names.>"


def event_dedupe_key(service: str, handler: str, event_id: str) -> str:
    """The key that says `handler` of `service` finished the event `event_id`."""
    return f"{service}.{handler}.{event_id}"


APPLICATIONS: Final = "apps.*"
APPLICATION_NAMES: Final = "app-names.*"
CONFIGURATIONS: Final = "configs.*"
