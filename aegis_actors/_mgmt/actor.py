"""`ManagementService`: the `aegis-mgmt` service, serving `aegis.mgmt.{resource}.{verb}`.

| subject | request | success |
| --- | --- | --- |
| `aegis.mgmt.services.create` | definition without timestamps | 201, definition, revision |
| `aegis.mgmt.services.get` | `{serviceName}` | 200, definition, revision |
| `aegis.mgmt.services.list` | `{limit?, cursor?}` | 200, `{items, nextCursor}` |
| `aegis.mgmt.services.update` | `{serviceName, revision, owner?, description?, version?}` | 200 |
| `aegis.mgmt.services.delete` | `{serviceName, revision?}` | 204 |
| `aegis.mgmt.instances.list` | `{serviceName?}` | 200, `{items}` |
| `aegis.mgmt.instances.get` | `{instanceId}` | 200, instance |

A request on any other subject under `aegis.mgmt.` gets 404 NOT_FOUND
listing the `{resource}.{verb}`s above.

Run as many instances as you like: they share the subjects through the
service's queue group, keep no state that matters (the listing index is a
cache that checks itself against the bucket at every read), and every write
is decided atomically by the server, so any instance answers any request.
Buckets are opened at first use, so an instance started while JetStream is
down serves 503 until it is back rather than failing to start.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from aegis_actors._configuration.models import MAX_CONFIG_BYTES
from aegis_actors._endpoints import rpc
from aegis_actors._mgmt.configs import CONFIGURATION_VERBS, ConfigurationApi
from aegis_actors._mgmt.definitions import DefinitionStore
from aegis_actors._mgmt.instances import InstanceQueries
from aegis_actors._mgmt.listing import DefinitionIndex
from aegis_actors._mgmt.models import (
    CreateService,
    DeleteService,
    GetInstance,
    GetService,
    InstanceList,
    ListInstances,
    ListServices,
    UpdateService,
)
from aegis_actors._registry.models import ServiceInstance
from aegis_actors._version import __version__
from aegis_actors._wire import Reply

SERVICE_NAME: Final = "aegis-mgmt"
#: Requests one instance serves at once: each mostly waits on one KV round
#: trip, and every write is checked by the server, so they need no ordering.
CONCURRENCY: Final = 64

VERBS: Final[dict[str, tuple[str, ...]]] = {
    "services": ("create", "get", "list", "update", "delete"),
    "instances": ("list", "get"),
    **CONFIGURATION_VERBS,
}


class ManagementService(ConfigurationApi):
    """The fleet's control plane: service definitions and instances over request-reply.

    Example:

        async with ActorSystem() as system:
            await start_instance(system, ManagementService, InstanceSettings())
    """

    service_name = SERVICE_NAME
    version = __version__
    # A definition is under 3 KiB; anything near the 1 MiB NATS limit is a mistake.
    # A configuration may hold 64 KiB of compact JSON, and a client may send it
    # indented or with \u escapes: twice that leaves it room (at 64 KiB, a
    # configuration of the largest size allowed could not be sent at all).
    max_request_bytes = 2 * MAX_CONFIG_BYTES

    def extra_subjects(self) -> Mapping[str, str]:
        subjects = self.actor_instance.subjects
        return {
            subjects.mgmt(resource, verb): f"{resource}_{verb}"
            for resource, verbs in VERBS.items()
            for verb in verbs
        }

    def extra_subjects_root(self) -> str:
        # Any other `aegis.mgmt.>` subject (an unknown resource or verb) gets
        # 404 naming the known ones, not "no responders" (docs/reference/errors.md).
        return self.actor_instance.subjects.mgmt_root()

    async def on_start(self) -> None:
        self._definitions: DefinitionStore | None = None
        self._index: DefinitionIndex | None = None
        self._instances: InstanceQueries | None = None

    def _close_stores(self) -> None:
        super()._close_stores()
        self._definitions = self._index = self._instances = None

    async def _store(self) -> DefinitionStore:
        if self._definitions is None:
            instance = self.actor_instance
            js = self.nats.jetstream(timeout=instance.kv_timeout)
            self._definitions = await DefinitionStore.open(js, instance.buckets)
        return self._definitions

    async def _listing(self) -> DefinitionIndex:
        if self._index is None:
            self._index = DefinitionIndex((await self._store()).bucket)
        return self._index

    async def _registry(self) -> InstanceQueries:
        if self._instances is None:
            instance = self.actor_instance
            js = self.nats.jetstream(timeout=instance.kv_timeout)
            self._instances = await InstanceQueries.open(js, instance.buckets)
        return self._instances

    # -- services ------------------------------------------------------------------

    @rpc(max_concurrency=CONCURRENCY)
    async def services_create(self, params: CreateService) -> Reply:
        """Create a service definition (201; 409 ALREADY_EXISTS)."""
        with self._store_errors():
            created = await (await self._store()).create(params)
        return Reply(created.definition, status=201, revision=created.revision)

    @rpc(max_concurrency=CONCURRENCY, idempotent=True)
    async def services_get(self, params: GetService) -> Reply:
        """Read a service definition and its revision (404 NOT_FOUND)."""
        with self._store_errors():
            found = await (await self._store()).get(params.service_name)
        return Reply(found.definition, revision=found.revision)

    @rpc(max_concurrency=CONCURRENCY, idempotent=True)
    async def services_list(self, params: ListServices) -> Reply:
        """List service definitions sorted by name, a page at a time."""
        with self._store_errors():
            listing = await self._listing()
            page = await listing.page(params.limit, params.cursor, self._page_bytes())
        return Reply(data_json=page)

    @rpc(max_concurrency=CONCURRENCY)
    async def services_update(self, params: UpdateService) -> Reply:
        """Change a definition at its current revision (404; 409 REVISION_CONFLICT)."""
        with self._store_errors():
            updated = await (await self._store()).update(params)
        return Reply(updated.definition, revision=updated.revision)

    @rpc(max_concurrency=CONCURRENCY)
    async def services_delete(self, params: DeleteService) -> Reply:
        """Delete a definition, at a given revision if one is named (204; 404; 409)."""
        with self._store_errors():
            await (await self._store()).delete(params.service_name, params.revision)
        return Reply(status=204)

    # -- instances -----------------------------------------------------------------

    @rpc(max_concurrency=CONCURRENCY, idempotent=True)
    async def instances_list(self, params: ListInstances) -> InstanceList:
        """List live instances, of one service or of all."""
        with self._store_errors():
            return await (await self._registry()).list(params.service_name)

    @rpc(max_concurrency=CONCURRENCY, idempotent=True)
    async def instances_get(self, params: GetInstance) -> ServiceInstance:
        """Read one live instance (404 NOT_FOUND)."""
        with self._store_errors():
            return await (await self._registry()).get(params.instance_id)
