"""Live configuration: a service bound to (application, configuration name) sees every change.

The instance tree gets two more children, before the service:

```
config-watch   KVWatchActor on `configs.*` of the `aegis-config` bucket
config         ConfigurationActor: resolves the binding, validates, tells the service
```

At start the `ConfigurationActor` reads the current value, so the service has it in
`self.configuration` before it serves its first call (an unreachable store
fails the start, and the supervisor retries; a configuration that does not
exist yet leaves `None` and arrives when it is created). Then every change
that reaches the watch is validated against the binding's model and told to
the service as a `ConfigurationChanged`; the service calls `on_configuration_changed(new,
old)` from its mailbox, so changes come in order and never two at once. A
value that fails the model is rejected for this service (logged, the old
value kept); a deleted configuration keeps its last value (logged). A
restarted `ConfigurationActor` (after a KV timeout, say) tells the service the value
it reads if it differs from the service's, so no change is lost.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import ValidationError

from aegis_actors._actor import Actor
from aegis_actors._buckets import CONFIGURATIONS, configuration_key
from aegis_actors._cell import Cell, Readable
from aegis_actors._configuration.binding import (
    BoundValue,
    ConfigurationBinding,
    ConfigurationChanged,
)
from aegis_actors._configuration.models import Configuration
from aegis_actors._configuration.store import ConfigurationStore
from aegis_actors._connection import Connection
from aegis_actors._errors import ServiceError
from aegis_actors._instance import Instance
from aegis_actors._ref import ActorRef
from aegis_actors._watch import KeyChanged, KeyRemoved, WatchState, WatchTopic

#: The keys the configuration watch follows.
WATCHED_KEYS: Final = CONFIGURATIONS


class ConfigurationActor(Actor):
    """Keeps the `configuration` cell current (its one writer); tells the service each change."""

    def __init__(
        self,
        instance: Instance,
        binding: ConfigurationBinding,
        topic: WatchTopic,
        *,
        connection: Connection,
        configuration: Cell[BoundValue],
        service: Readable[ActorRef | None],
    ) -> None:
        super().__init__()
        self.instance = instance
        self.binding = binding
        self.topic = topic
        self.connection = connection
        self.configuration = configuration
        self.service = service
        self._store: ConfigurationStore | None = None
        self._application_id: str | None = None
        self._configuration_id: str | None = None
        self._revision = 0

    async def on_start(self) -> None:
        js = self.connection.jetstream(self.instance.kv_timeout)
        self._store = await ConfigurationStore.open(js, self.instance.buckets)
        try:
            application, _ = await self._store.find_application(self.binding.application)
            self._application_id = application.id
            current, revision = await self._store.find_configuration(
                application.id, self.binding.name
            )
        except ServiceError as exc:
            if exc.status != 404:
                raise
            self.actor_log.warning(
                "configuration not found; the service starts without it",
                application=self.binding.application,
                configuration=self.binding.name,
            )
        else:
            # A restart (the service is running): a change that came while
            # this actor was down would be skipped by the watch's replay (it
            # is not newer than what is read here), so tell it now.
            self._accept(current, revision, tell=self.service.value is not None)
        await self.topic.subscribe(self.actor_ref)

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, WatchState):
            for entry in message.entries:
                await self._changed(entry)
        elif isinstance(message, KeyChanged):
            await self._changed(message)
        elif isinstance(message, KeyRemoved):
            if self._configuration_id and message.key == configuration_key(self._configuration_id):
                self.actor_log.warning(
                    "configuration deleted; keeping its last value",
                    application=self.binding.application,
                    configuration=self.binding.name,
                )
                self._configuration_id = None
        else:
            return await super().on_receive(message)
        return None

    async def _changed(self, entry: KeyChanged) -> None:
        try:
            configuration = Configuration.model_validate_json(entry.value)
        except ValidationError:
            return  # not a configuration record: nothing for us
        if configuration.name != self.binding.name or not await self._ours(configuration):
            return
        if entry.revision <= self._revision:
            return  # the value we started with, or one already handled
        self._accept(configuration, entry.revision, tell=True)

    async def _ours(self, configuration: Configuration) -> bool:
        if configuration.application_id == self._application_id:
            return True
        # Another application's configuration of that name: it is ours if that
        # application now has our application's name (created after we
        # started, or deleted and created again: names are unique at any time).
        assert self._store is not None
        try:
            application, _ = await self._store.get_application(configuration.application_id)
        except ServiceError:
            return False
        if application.name != self.binding.application:
            return False
        self._application_id = application.id
        return True

    def _accept(self, configuration: Configuration, revision: int, *, tell: bool) -> None:
        self._revision = revision
        self._configuration_id = configuration.id
        model = self.binding.model
        try:
            value = (
                model.model_validate(configuration.config)
                if model is not None
                else configuration.config
            )
        except ValidationError as exc:
            self.actor_log.error(
                "configuration rejected by this service; keeping the old value",
                application=self.binding.application,
                configuration=self.binding.name,
                revision=revision,
                errors=[
                    {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                    for e in exc.errors(include_url=False)
                ],
            )
            return
        old = self.configuration.value.value
        if tell and value == old:
            return  # a new revision with the same value (e.g. comments changed)
        self.configuration.set(BoundValue(value, revision))
        self.actor_log.info(
            "configuration loaded" if not tell else "configuration changed",
            application=self.binding.application,
            configuration=self.binding.name,
            revision=revision,
        )
        service = self.service.value
        if tell and service is not None:
            # The system lane never refuses and keeps the order of changes.
            service.send_system(ConfigurationChanged(value, old, revision))
