"""`aegis top`: a frame drawn from a running fleet (the text, not a screenshot)."""

from __future__ import annotations

import re

import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from rich.console import Console

from aegis_actors import ActorSystem, Client, InstanceSettings, ServiceActor, rpc, start_instance
from aegis_actors._buckets import Buckets
from aegis_actors._mgmt.definitions import DefinitionStore
from aegis_actors._mgmt.models import CreateService
from aegis_actors._top import FleetSampler, render

pytestmark = pytest.mark.nats


class Quote(ServiceActor):
    service_name = "quote"
    version = "3.1.4"

    @rpc
    async def fail(self) -> None:
        raise RuntimeError("on purpose")

    @rpc
    async def ok(self) -> str:
        return "ok"


class Ledger(ServiceActor):
    service_name = "ledger"

    @rpc
    async def ok(self) -> str:
        return "ok"


def text_of(sampler_view: object) -> str:
    console = Console(width=100, record=True, color_system=None)
    console.print(render(sampler_view))  # type: ignore[arg-type]
    return console.export_text()


class TestTop:
    async def test_a_frame_shows_definitions_instances_status_and_counts(
        self, instance_settings: InstanceSettings, nats_url: str
    ) -> None:
        namespace = instance_settings.namespace
        async with ActorSystem() as system:
            quotes = [await start_instance(system, Quote, instance_settings) for _ in range(2)]
            ledger = await start_instance(system, Ledger, instance_settings)
            async with Client(url=nats_url, namespace=namespace) as client:
                store = await DefinitionStore.open(client_js(client), Buckets(namespace))
                await store.create(
                    CreateService.model_validate(
                        {"serviceName": "quote", "owner": "market-data", "version": "3.1.4"}
                    )
                )
                await store.create(
                    CreateService.model_validate(
                        {"serviceName": "dormant", "owner": "nobody", "version": "0.0.1"}
                    )
                )
                sampler = FleetSampler(client_nats(client), namespace)
                first = await sampler.sample()
                for _ in range(3):
                    await client.call("quote", "ok", {}, discovery=False)
                with pytest.raises(Exception, match="INTERNAL"):
                    await client.call("quote", "fail", {})
                view = await sampler.sample()
            for running in [*quotes, ledger]:
                await system.stop(running.ref)
        text = text_of(view)
        assert first.services
        assert all(i.rate is None for s in first.services for i in s.instances)
        assert "quote  market-data, v3.1.4" in text
        assert "ledger  undefined" in text
        assert "dormant  nobody, v0.0.1" in text
        assert "no instances" in text
        for running in quotes:
            assert running.instance_id in text
        lines = [line for line in text.splitlines() if line.strip().startswith("quote-")]
        assert len(lines) == 2
        assert all("ACTIVE" in line and "3.1.4" in line for line in lines)
        quote_view = next(s for s in view.services if s.name == "quote")
        assert sum(i.requests or 0 for i in quote_view.instances) == 4
        assert sum(i.errors or 0 for i in quote_view.instances) == 1
        assert all(i.rate is not None for i in quote_view.instances)
        assert "LATENCY" in text
        served = [i for i in quote_view.instances if i.requests]
        assert served
        assert all(i.latency is not None and i.latency > 0 for i in served)
        assert any(re.search(r"\d+(\.\d+)?ms", line) for line in lines)
        assert "services, 3 instances" in text


def client_nats(client: Client) -> NatsClient:
    return client.nats


def client_js(client: Client) -> JetStreamContext:
    return client.nats.jetstream()
