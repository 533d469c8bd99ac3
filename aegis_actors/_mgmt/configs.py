"""`aegis.mgmt.apps.*` and `aegis.mgmt.configs.*`: the configuration service's verbs.

A part of `ManagementService` (a base class of it), kept apart because it has
its own store and its own reasons to change. The store (`aegis_actors.
configuration.store`) holds the rules and the race-proof name uniqueness;
here requests become store calls and results become replies.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Final

import anyio

from aegis_actors._configuration.requests import (
    ApplicationPage,
    ConfigurationHistory,
    ConfigurationHistoryPage,
    ConfigurationPage,
    ConfigurationRevision,
    CreateApplication,
    CreateConfiguration,
    DeleteApplication,
    DeleteConfiguration,
    GetApplication,
    GetConfiguration,
    ListApplications,
    ListConfigurations,
    UpdateApplication,
    UpdateConfiguration,
)
from aegis_actors._configuration.store import ConfigurationStore
from aegis_actors._endpoints import rpc
from aegis_actors._errors import ConfigError, ErrorCode, ServiceError, StoreUnavailableError
from aegis_actors._pagination import ENVELOPE_BYTES
from aegis_actors._service import ServiceActor
from aegis_actors._wire import Reply

CONCURRENCY: Final = 64
CONFIGURATION_VERBS: Final[dict[str, tuple[str, ...]]] = {
    "apps": ("create", "get", "list", "update", "delete"),
    "configs": ("create", "get", "list", "update", "delete", "history"),
}


class ConfigurationApi(ServiceActor):
    """Applications and configurations over request-reply (docs/reference/management-api.md)."""

    _configurations: ConfigurationStore | None = None
    _opening: anyio.Lock | None = None

    @contextmanager
    def _store_errors(self) -> Iterator[None]:
        """An unreachable (or unusable) store is a 503, not a 500: the request may be retried.

        The one place the management API maps store failures to replies.
        """
        try:
            yield
        except StoreUnavailableError as exc:
            # "No stream answered" is also what a deleted bucket looks like:
            # open (and so create) the buckets again at the next request.
            self._close_stores()
            raise ServiceError.of(
                ErrorCode.SERVICE_UNAVAILABLE, f"the store is unreachable: {exc}"
            ) from exc
        except ConfigError as exc:
            raise ServiceError.of(
                ErrorCode.SERVICE_UNAVAILABLE, f"the store is unusable: {exc}"
            ) from exc

    def _close_stores(self) -> None:
        """Forget the opened stores (subclasses forget theirs too)."""
        self._configurations = None

    async def _configuration_store(self) -> ConfigurationStore:
        if self._configurations is not None:
            return self._configurations
        if self._opening is None:
            self._opening = anyio.Lock()
        # One opening and one repair, not one per request of the first burst.
        async with self._opening:
            if self._configurations is None:
                instance = self.actor_instance
                js = self.nats.jetstream(timeout=instance.kv_timeout)
                store = await ConfigurationStore.open(js, instance.buckets)
                # A create or delete cut short by a crash leaves an orphan name or a
                # half-deleted application: finish the work before serving.
                report = asdict(await store.repair())
                if any(report.values()):
                    self.actor_log.info("configuration store repaired", **report)
                self._configurations = store
            return self._configurations

    def _page_bytes(self) -> int:
        """What a list page's items may take of one NATS message."""
        return self.nats.max_payload - ENVELOPE_BYTES

    # -- applications ----------------------------------------------------------------

    @rpc(max_concurrency=CONCURRENCY)
    async def apps_create(self, params: CreateApplication) -> Reply:
        """Create an application (201; 409 ALREADY_EXISTS)."""
        with self._store_errors():
            store = await self._configuration_store()
            app, revision = await store.create_application(params.name, params.comments)
        return Reply(app, status=201, revision=revision)

    @rpc(max_concurrency=CONCURRENCY, idempotent=True)
    async def apps_get(self, params: GetApplication) -> Reply:
        """Read an application, with its configuration ids (404 NOT_FOUND)."""
        with self._store_errors():
            store = await self._configuration_store()
            if params.id is not None:
                app, revision = await store.get_application(params.id)
            else:
                assert params.name is not None
                app, revision = await store.find_application(params.name)
        return Reply(app, revision=revision)

    @rpc(max_concurrency=CONCURRENCY, idempotent=True)
    async def apps_list(self, params: ListApplications) -> ApplicationPage:
        """List applications sorted by name, a page at a time."""
        with self._store_errors():
            store = await self._configuration_store()
            page = await store.list_applications(params.limit, params.cursor, self._page_bytes())
        return ApplicationPage(items=page.items, next_cursor=page.next_cursor)

    @rpc(max_concurrency=CONCURRENCY)
    async def apps_update(self, params: UpdateApplication) -> Reply:
        """Rename or comment an application at its current revision (404; 409)."""
        with self._store_errors():
            store = await self._configuration_store()
            app, revision = await store.update_application(
                params.id, params.revision, params.name, params.comments
            )
        return Reply(app, revision=revision)

    @rpc(max_concurrency=CONCURRENCY)
    async def apps_delete(self, params: DeleteApplication) -> Reply:
        """Delete an application and its configurations (204; 404; 409)."""
        with self._store_errors():
            store = await self._configuration_store()
            await store.delete_application(params.id, params.revision)
        return Reply(status=204)

    # -- configurations --------------------------------------------------------------

    @rpc(max_concurrency=CONCURRENCY)
    async def configs_create(self, params: CreateConfiguration) -> Reply:
        """Create a configuration in an application (201; 404; 409 ALREADY_EXISTS)."""
        with self._store_errors():
            store = await self._configuration_store()
            config, revision = await store.create_configuration(
                params.application_id, params.name, params.comments, params.config
            )
        return Reply(config, status=201, revision=revision)

    @rpc(max_concurrency=CONCURRENCY, idempotent=True)
    async def configs_get(self, params: GetConfiguration) -> Reply:
        """Read a configuration, by id or by application and name (404)."""
        with self._store_errors():
            store = await self._configuration_store()
            if params.id is not None:
                config, revision = await store.get_configuration(params.id)
            else:
                assert params.application_id is not None
                assert params.name is not None
                config, revision = await store.find_configuration(
                    params.application_id, params.name
                )
        return Reply(config, revision=revision)

    @rpc(max_concurrency=CONCURRENCY, idempotent=True)
    async def configs_list(self, params: ListConfigurations) -> ConfigurationPage:
        """List configurations (of one application, or all) sorted by name."""
        with self._store_errors():
            store = await self._configuration_store()
            page = await store.list_configurations(
                params.application_id, params.limit, params.cursor, self._page_bytes()
            )
        return ConfigurationPage(items=page.items, next_cursor=page.next_cursor)

    @rpc(max_concurrency=CONCURRENCY)
    async def configs_update(self, params: UpdateConfiguration) -> Reply:
        """Change a configuration at its current revision (404; 409)."""
        with self._store_errors():
            store = await self._configuration_store()
            config, revision = await store.update_configuration(
                params.id, params.revision, params.name, params.comments, params.config
            )
        return Reply(config, revision=revision)

    @rpc(max_concurrency=CONCURRENCY)
    async def configs_delete(self, params: DeleteConfiguration) -> Reply:
        """Delete a configuration (204; 404; 409)."""
        with self._store_errors():
            store = await self._configuration_store()
            await store.delete_configuration(params.id, params.revision)
        return Reply(status=204)

    @rpc(max_concurrency=CONCURRENCY, idempotent=True)
    async def configs_history(self, params: ConfigurationHistory) -> ConfigurationHistoryPage:
        """The last 10 revisions of a configuration, newest first (404)."""
        with self._store_errors():
            store = await self._configuration_store()
            revisions = await store.configuration_history(params.id)
        return ConfigurationHistoryPage(
            items=[ConfigurationRevision(revision=r, configuration=c) for c, r in revisions]
        )
