"""Live configuration: a running service sees its configuration's changes without a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from nats.aio.client import Client
from pydantic import BaseModel, Field

from aegis_actors import (
    ActorSystem,
    ConfigurationBinding,
    ConfigurationBindingSettings,
    InstanceSettings,
    ServiceActor,
    StoreUnavailableError,
    WhichChildren,
    rpc,
    start_instance,
)
from aegis_actors._buckets import Buckets
from aegis_actors._configuration.live import ConfigurationActor
from aegis_actors._configuration.store import ConfigurationStore
from aegis_actors._watch import KeyChanged
from tests.probes import Journal, watch_logs

pytestmark = pytest.mark.nats


class Limits(BaseModel):
    max_quantity: int = Field(gt=0)


class Trader(ServiceActor):
    service_name = "trader"
    configuration_binding = ConfigurationBinding("desk", "limits", Limits)

    async def on_start(self) -> None:
        self.journal: Journal = self.settings["journal"]
        self.journal.record("start", self._quantity(self.configuration))

    @staticmethod
    def _quantity(value: Limits | None) -> int | None:
        return None if value is None else value.max_quantity

    async def on_configuration_changed(self, new: Limits, old: Limits | None) -> None:
        self.journal.record("changed", self._quantity(old), self._quantity(new))
        await anyio.lowlevel.checkpoint()  # a second change must still wait its turn
        self.journal.record("done", self._quantity(new))

    @rpc
    async def limit(self) -> int | None:
        return self._quantity(self.configuration)


@pytest.fixture
async def store(nats_client: Client, namespace: str) -> ConfigurationStore:
    return await ConfigurationStore.open(nats_client.jetstream(), Buckets(namespace))


@asynccontextmanager
async def trader(settings: InstanceSettings, journal: Journal) -> AsyncIterator[Any]:
    options = settings.model_copy(update={"settings": {"journal": journal}, "registration": False})
    async with ActorSystem() as system:
        running = await start_instance(system, Trader, options)
        yield system, running


class TestLiveConfiguration:
    """The value is there before the first call; every change arrives in order."""

    async def test_the_current_value_is_there_at_start_and_changes_arrive(
        self, instance_settings: InstanceSettings, store: ConfigurationStore
    ) -> None:
        app, _ = await store.create_application("desk", "")
        config, revision = await store.create_configuration(
            app.id, "limits", "", {"max_quantity": 10}
        )
        journal = Journal()
        async with trader(instance_settings, journal):
            assert journal.events[0] == ("start", 10)
            await store.update_configuration(config.id, revision, None, None, {"max_quantity": 20})
            await journal.wait_for(lambda events: ("done", 20) in events)
        assert journal.of("changed") == [("changed", 10, 20)]

    async def test_fifty_rapid_updates_arrive_in_order_one_at_a_time(
        self, instance_settings: InstanceSettings, store: ConfigurationStore
    ) -> None:
        app, _ = await store.create_application("desk", "")
        config, revision = await store.create_configuration(
            app.id, "limits", "", {"max_quantity": 1}
        )
        journal = Journal()
        async with trader(instance_settings, journal):
            for quantity in range(2, 52):
                _, revision = await store.update_configuration(
                    config.id, revision, None, None, {"max_quantity": quantity}
                )
            await journal.wait_for(lambda events: ("done", 51) in events)
        changes = journal.of("changed")
        assert [c[2] for c in changes] == list(range(2, 52))
        assert all(old + 1 == new for _, old, new in changes)
        # Never two at once: each change finished before the next began.
        kinds = [e[0] for e in journal.events if e[0] in ("changed", "done")]
        assert kinds == ["changed", "done"] * 50

    async def test_an_invalid_value_is_rejected_and_the_old_one_kept(
        self, instance_settings: InstanceSettings, store: ConfigurationStore
    ) -> None:
        app, _ = await store.create_application("desk", "")
        config, revision = await store.create_configuration(
            app.id, "limits", "", {"max_quantity": 5}
        )
        journal = Journal()
        async with trader(instance_settings, journal):
            with watch_logs() as logs:
                _, revision = await store.update_configuration(
                    config.id, revision, None, None, {"max_quantity": -1}
                )
                await logs.wait_event(
                    "configuration rejected by this service; keeping the old value"
                )
                _, revision = await store.update_configuration(
                    config.id, revision, None, None, {"max_quantity": 6}
                )
                await journal.wait_for(lambda events: ("done", 6) in events)
            (rejected,) = logs.entries(
                "configuration rejected by this service; keeping the old value"
            )
            assert rejected["errors"][0]["field"] == "max_quantity"
        assert journal.of("changed") == [("changed", 5, 6)]

    async def test_a_deleted_configuration_keeps_its_last_value(
        self, instance_settings: InstanceSettings, store: ConfigurationStore, nats_client: Client
    ) -> None:
        app, _ = await store.create_application("desk", "")
        config, _ = await store.create_configuration(app.id, "limits", "", {"max_quantity": 7})
        journal = Journal()
        async with trader(instance_settings, journal) as (system, running):
            with watch_logs() as logs:
                await store.delete_configuration(config.id, None)
                await logs.wait_event("configuration deleted; keeping its last value")
            reply = await nats_client.request(
                running.plan.instance.subjects.rpc("trader", "limit"), b"", timeout=5
            )
            assert b'"data":7' in reply.data
            del system

    async def test_a_configuration_created_later_arrives_while_running(
        self, instance_settings: InstanceSettings, store: ConfigurationStore
    ) -> None:
        journal = Journal()
        async with trader(instance_settings, journal):
            assert journal.events[0] == ("start", None)
            app, _ = await store.create_application("desk", "")
            await store.create_configuration(app.id, "limits", "", {"max_quantity": 3})
            await journal.wait_for(lambda events: ("done", 3) in events)
        assert journal.of("changed") == [("changed", None, 3)]

    async def test_a_change_made_while_the_config_actor_restarts_is_not_lost(
        self,
        instance_settings: InstanceSettings,
        store: ConfigurationStore,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        app, _ = await store.create_application("desk", "")
        config, revision = await store.create_configuration(
            app.id, "limits", "", {"max_quantity": 10}
        )
        failed: list[int] = []
        changed = ConfigurationActor._changed

        async def times_out_once(actor: ConfigurationActor, entry: KeyChanged) -> None:
            # The KV read of a change times out once: the actor crashes and
            # its supervisor restarts it, after the change was written.
            if entry.revision > revision and not failed:
                failed.append(entry.revision)
                raise StoreUnavailableError("simulated KV timeout")
            await changed(actor, entry)

        monkeypatch.setattr(ConfigurationActor, "_changed", times_out_once)
        journal = Journal()
        async with trader(instance_settings, journal):
            await store.update_configuration(config.id, revision, None, None, {"max_quantity": 20})
            await journal.wait_for(lambda events: ("done", 20) in events)
        assert failed
        assert journal.of("changed") == [("changed", 10, 20)]

    async def test_a_restarted_service_starts_with_the_latest_value(
        self, instance_settings: InstanceSettings, store: ConfigurationStore
    ) -> None:
        app, _ = await store.create_application("desk", "")
        config, revision = await store.create_configuration(
            app.id, "limits", "", {"max_quantity": 1}
        )
        journal = Journal()
        async with trader(instance_settings, journal) as (system, running):
            await system.stop(running.ref)
            await store.update_configuration(config.id, revision, None, None, {"max_quantity": 2})
            again = Journal()
            options = instance_settings.model_copy(
                update={"settings": {"journal": again}, "registration": False}
            )
            rerun = await start_instance(system, Trader, options)
            assert again.events[0] == ("start", 2)
            await system.stop(rerun.ref)

    async def test_a_config_file_binding_overrides_the_names(
        self, instance_settings: InstanceSettings, store: ConfigurationStore
    ) -> None:
        app, _ = await store.create_application("other-desk", "")
        await store.create_configuration(app.id, "risk", "", {"max_quantity": 99})
        journal = Journal()
        options = instance_settings.model_copy(
            update={
                "configuration": ConfigurationBindingSettings(
                    application="other-desk", name="risk"
                ),
                "settings": {"journal": journal},
                "registration": False,
            }
        )
        async with ActorSystem() as system:
            running = await start_instance(system, Trader, options)
            children = [c.id for c in await running.ref.ask(WhichChildren())]
            await system.stop(running.ref)
        assert journal.events[0] == ("start", 99)
        assert children.index("config") < children.index("service")


class TestLiveConfigurationEdges:
    """Same-value revisions are quiet; an application made again under its name is followed."""

    async def test_a_comments_only_change_does_not_call_the_hook(
        self, instance_settings: InstanceSettings, store: ConfigurationStore
    ) -> None:
        app, _ = await store.create_application("desk", "")
        config, revision = await store.create_configuration(
            app.id, "limits", "", {"max_quantity": 1}
        )
        journal = Journal()
        async with trader(instance_settings, journal):
            _, revision = await store.update_configuration(config.id, revision, None, "note", None)
            await store.update_configuration(config.id, revision, None, None, {"max_quantity": 2})
            await journal.wait_for(lambda events: ("done", 2) in events)
        assert journal.of("changed") == [("changed", 1, 2)]

    async def test_an_application_deleted_and_made_again_is_followed(
        self, instance_settings: InstanceSettings, store: ConfigurationStore
    ) -> None:
        app, revision = await store.create_application("desk", "")
        await store.create_configuration(app.id, "limits", "", {"max_quantity": 1})
        journal = Journal()
        async with trader(instance_settings, journal):
            await store.delete_application(app.id, revision)
            again, _ = await store.create_application("desk", "")
            await store.create_configuration(again.id, "limits", "", {"max_quantity": 5})
            await journal.wait_for(lambda events: ("done", 5) in events)
        assert journal.of("changed") == [("changed", 1, 5)]
