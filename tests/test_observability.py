"""Observability: W3C trace context, `/metrics`, OpenTelemetry spans, trace ids in logs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import pytest
from nats.aio.client import Client as NatsClient
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families
from pydantic_core import from_json

from aegis_actors import (
    ActorSystem,
    Client,
    InstanceSettings,
    ServiceActor,
    Subjects,
    current_request,
    enable_tracing,
    event,
    rpc,
    serve_metrics,
    start_instance,
)
from aegis_actors._telemetry.context import incoming, parse_traceparent
from aegis_actors._telemetry.setup import disable_tracing
from aegis_actors._wire import TRACE_ID_HEADER
from services.trading.order import OrderService
from services.trading.pricing import PricingService
from services.trading.risk import RiskService
from tests.test_run import aegis, fleet_file, read_line

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class TestTraceContext:
    """`traceparent` is read by the W3C rules; an older caller's own id is kept for logs."""

    def test_a_valid_traceparent_and_its_state_are_read(self) -> None:
        context = parse_traceparent(TRACEPARENT, "congo=t61rcWkgMzE")
        assert context is not None
        assert (context.trace_id, context.span_id, context.flags) == (TRACE_ID, PARENT_ID, "01")
        assert context.state == "congo=t61rcWkgMzE"
        assert context.traceparent == TRACEPARENT

    @pytest.mark.parametrize(
        "value",
        [
            "",
            TRACEPARENT.upper(),
            f"00-{'0' * 32}-{PARENT_ID}-01",
            f"00-{TRACE_ID}-{'0' * 16}-01",
            f"ff-{TRACE_ID}-{PARENT_ID}-01",
            f"00-{TRACE_ID}-{PARENT_ID}-01-extra",
            f"00-{TRACE_ID[:-1]}-{PARENT_ID}-01",
            "not a traceparent at all, but long enough to be one maybe",
        ],
    )
    def test_an_invalid_traceparent_is_ignored(self, value: str) -> None:
        assert parse_traceparent(value) is None

    def test_a_later_version_may_append_fields(self) -> None:
        context = parse_traceparent(f"01-{TRACE_ID}-{PARENT_ID}-01-what-comes-next")
        assert context is not None
        assert context.trace_id == TRACE_ID

    def test_an_older_callers_own_trace_id_is_kept_beside_the_w3c_context(self) -> None:
        assert incoming({TRACE_ID_HEADER: "trace-123"}) == (None, "trace-123")
        parent, legacy = incoming({"traceparent": TRACEPARENT, TRACE_ID_HEADER: TRACE_ID})
        assert parent is not None
        assert legacy is None
        assert incoming({TRACE_ID_HEADER: "\x1b[31mred"}) == (None, None)
        assert incoming({"tracestate": "x=1"}) == (None, None)


class Greeter(ServiceActor):
    """Logs from its own handlers, as a user's service would."""

    service_name = "greeter"
    seen: anyio.Event  # set by the test: the event handler ran

    @rpc
    async def greet(self) -> str:
        self.actor_log.info("greeting")
        await self.publish_event("events.greeter.greeted", {"who": "you"})
        request = current_request()
        assert request is not None
        return request.trace_id

    @event("events.greeter.greeted")
    async def on_greeted(self, payload: dict[str, str]) -> None:
        self.actor_log.info("greeted", who=payload["who"])
        self.seen.set()


async def greet(
    settings: InstanceSettings, nats: NatsClient, namespace: str, traceparent: str | None
) -> Any:
    """Start a Greeter, have it greet (with `traceparent`), wait for its event handler."""
    Greeter.seen = anyio.Event()
    async with ActorSystem() as system:
        await start_instance(system, Greeter, settings)
        reply = await nats.request(
            Subjects(namespace).rpc("greeter", "greet"),
            b"null",
            timeout=5,
            headers={"traceparent": traceparent} if traceparent else None,
        )
        with anyio.fail_after(5):
            await Greeter.seen.wait()
    return reply


class TestLogs:
    """Every line a handler writes carries the trace id and the method, the user's own too."""

    async def test_a_handlers_own_log_lines_carry_the_trace_id_and_method(
        self,
        instance_settings: InstanceSettings,
        nats_client: NatsClient,
        namespace: str,
        captured_logs: list[dict[str, Any]],
    ) -> None:
        reply = await greet(instance_settings, nats_client, namespace, TRACEPARENT)
        assert from_json(reply.data)["data"] == TRACE_ID
        assert reply.headers == {TRACE_ID_HEADER: TRACE_ID}
        greeting = next(line for line in captured_logs if line["event"] == "greeting")
        assert (greeting["trace_id"], greeting["method"]) == (TRACE_ID, "greet")
        greeted = next(line for line in captured_logs if line["event"] == "greeted")
        assert (greeted["trace_id"], greeted["method"]) == (TRACE_ID, "on_greeted")
        started = next(line for line in captured_logs if line["event"] == "instance started")
        assert "trace_id" not in started


@asynccontextmanager
async def trading(settings: InstanceSettings, nats_url: str) -> AsyncIterator[Client]:
    """One pricing, one risk and one order instance, and a client to call them."""
    pricing = settings.model_copy(update={"settings": {"publish_every": 0}})
    risk = settings.model_copy(update={"settings": {"max_order_notional": 10_000.0}})
    async with ActorSystem() as system:
        for cls, options in ((PricingService, pricing), (RiskService, risk)):
            await start_instance(system, cls, options)
        await start_instance(system, OrderService, settings)
        async with Client(url=nats_url, namespace=settings.namespace) as client:
            for service in ("pricing-service", "risk-service", "order-service"):
                await client.wait_for_instances(service, 1)
            yield client


async def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """`/metrics` by sample name: (labels, value) pairs."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def total(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    return sum(
        value
        for have, value in samples.get(name, [])
        if all(have.get(k) == v for k, v in labels.items())
    )


class TestMetrics:
    """`/metrics` serves the runtime's counters and histograms and the services' own."""

    async def test_counters_and_latency_buckets_move_with_the_calls_made(
        self, instance_settings: InstanceSettings, nats_url: str
    ) -> None:
        async with serve_metrics(port=0) as url, trading(instance_settings, nats_url) as client:
            before = await scrape(url)
            for _ in range(3):
                await client.call(
                    "order-service",
                    "create_order",
                    {"symbol": "ACME", "side": "buy", "quantity": 1},
                )
            await client.call(
                "order-service", "create_order", {"symbol": "ACME", "side": "buy", "quantity": 500}
            )
            with pytest.raises(Exception, match="no price for NOPE"):
                await client.call("pricing-service", "get_price", {"symbol": "NOPE"})
            after = await scrape(url)

        def moved(name: str, **labels: str) -> float:
            return total(after, name, **labels) - total(before, name, **labels)

        order = {"service": "order-service", "method": "create_order"}
        assert moved("aegis_requests_total", **order) == 4
        assert moved("aegis_request_duration_seconds_count", **order) == 4
        assert moved("aegis_request_duration_seconds_bucket", **order, le="+Inf") == 4
        assert moved("aegis_request_duration_seconds_bucket", **order, le="10.0") == 4
        assert moved("aegis_request_duration_seconds_bucket", **order, le="0.0001") == 0
        assert moved("aegis_request_duration_seconds_sum", **order) > 0
        pricing = {"service": "pricing-service", "method": "get_price"}
        assert moved("aegis_requests_total", **pricing) == 5
        assert moved("aegis_request_errors_total", **pricing, code="NOT_FOUND") == 1
        assert moved("aegis_calls_total", service="order-service") == 8
        for target in ("pricing-service", "risk-service"):
            calls = {"service": "order-service", "target": target}
            assert moved("aegis_calls_total", **calls) == 4
            assert moved("aegis_call_duration_seconds_count", **calls) == 4
            assert moved("aegis_call_duration_seconds_bucket", **calls, le="+Inf") == 4
        assert moved("aegis_discovery_hits_total", service="order-service") >= 7
        assert total(after, "aegis_discovery_synced", service="order-service") == 1
        client = {"service": "", "target": "pricing-service"}
        assert moved("aegis_call_errors_total", **client, code="NOT_FOUND") == 1
        assert moved("aegis_events_published_total", subject="events.order.created") == 3
        assert moved("trading_orders_total", service="order-service", outcome="accepted") == 3
        assert moved("trading_orders_total", outcome="rejected") == 1
        assert moved("trading_risk_decisions_total", decision="rejected") == 1
        assert moved("trading_quotes_total", service="pricing-service", symbol="ACME") == 4
        assert moved("trading_quote_age_seconds_count", service="order-service") == 4
        assert total(after, "aegis_mailbox_capacity", service="order-service") > 0
        assert total(after, "aegis_heartbeats_total", service="order-service") >= 1
        active = {"service": "order-service", "status": "ACTIVE"}
        assert total(after, "aegis_instance_status", **active) == 1
        assert total(after, "aegis_instance_status", service="order-service") == 1
        assert "aegis_actor_restarts_total" in before or "aegis_dead_letters_total" in before

    async def test_aegis_run_serves_metrics_on_the_port_given(
        self, tmp_path: Any, nats_url: str, namespace: str, nats_client: NatsClient
    ) -> None:
        path = fleet_file(tmp_path, f'[nats]\nurl = "{nats_url}"', namespace)
        async with aegis("run", str(path), "--metrics-port", "0") as process:
            line = await read_line(process)
            found = re.search(r"metrics at (http://\S+/metrics)", line)
            assert found, line
            await nats_client.request(Subjects(namespace).rpc("hello", "hi"), b"", timeout=5)
            samples = await scrape(found.group(1))
            process.terminate()
        assert total(samples, "aegis_requests_total", service="hello", method="hi") == 1


class Solo(ServiceActor):
    """One ACTIVE instance in its group; an event handler that fails when told to."""

    service_name = "solo"
    sticky_active_group = "main"
    active: anyio.Event
    handled: anyio.Event

    async def on_leadership_changed(self, active: bool) -> None:
        if active:
            self.active.set()

    @event("events.solo.ping", broadcast=True)
    async def on_ping(self, payload: dict[str, bool]) -> None:
        if payload["fail"]:
            self.handled.set()
            raise RuntimeError("told to fail")


class TestLeadershipAndEventMetrics:
    """Leadership (active, fencing revision, changes) and event handling show on `/metrics`."""

    async def test_an_active_instance_and_its_handled_and_failed_events(
        self, instance_settings: InstanceSettings, nats_client: NatsClient, namespace: str
    ) -> None:
        Solo.active, Solo.handled = anyio.Event(), anyio.Event()
        async with serve_metrics(port=0) as url, ActorSystem() as system:
            await start_instance(system, Solo, instance_settings)
            with anyio.fail_after(10):
                await Solo.active.wait()
            subject = Subjects(namespace).event("events.solo.ping")
            await nats_client.publish(subject, b'{"fail": false}')
            await nats_client.publish(subject, b'{"fail": true}')
            with anyio.fail_after(5):
                await Solo.handled.wait()
            samples = await scrape(url)
        group = {"service": "solo", "group": "main"}
        assert total(samples, "aegis_leadership_active", **group) == 1
        assert total(samples, "aegis_leadership_changes_total", **group) == 1
        assert total(samples, "aegis_leadership_revision", **group) >= 1
        handler = {"service": "solo", "handler": "on_ping"}
        assert total(samples, "aegis_events_handled_total", **handler) == 2
        assert total(samples, "aegis_event_handler_errors_total", **handler) == 1


class _Ended(SpanProcessor):
    """Sets `done` once a span of that name has ended."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.done = anyio.Event()

    def on_end(self, span: ReadableSpan) -> None:
        if span.name == self.name:
            self.done.set()


@pytest.fixture
def spans() -> Iterator[tuple[InMemorySpanExporter, _Ended]]:
    """Tracing on, one provider per service (its `service.name`), spans kept in memory."""
    exporter = InMemorySpanExporter()
    ended = _Ended("process events.order.created")
    providers: dict[str, TracerProvider] = {}

    def provider_of(service: str) -> TracerProvider:
        if service not in providers:
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            provider.add_span_processor(ended)
            providers[service] = provider
        return providers[service]

    enable_tracing(provider_of)
    try:
        yield exporter, ended
    finally:
        disable_tracing()


class TestSpans:
    """One trace from a caller's `traceparent` through order, pricing, risk and the event."""

    async def test_one_trace_with_the_right_parents_across_services_and_the_event(
        self,
        instance_settings: InstanceSettings,
        nats_url: str,
        nats_client: NatsClient,
        spans: tuple[InMemorySpanExporter, _Ended],
    ) -> None:
        exporter, ended = spans
        async with trading(instance_settings, nats_url):
            exporter.clear()
            reply = await nats_client.request(
                Subjects(instance_settings.namespace).rpc("order-service", "create_order"),
                b'{"symbol": "ACME", "side": "buy", "quantity": 1}',
                timeout=5,
                headers={"traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE"},
            )
            with anyio.fail_after(5):
                await ended.done.wait()
        assert from_json(reply.data)["data"]["status"] == "accepted"
        assert reply.headers == {TRACE_ID_HEADER: TRACE_ID}
        found = {(s.name, s.kind): s for s in exporter.get_finished_spans()}
        assert {f"{s.context.trace_id:032x}" for s in found.values()} == {TRACE_ID}

        def span(name: str, kind: SpanKind) -> ReadableSpan:
            return found[name, kind]

        def parent_of(child: ReadableSpan) -> int:
            assert child.parent is not None
            return child.parent.span_id

        order = span("order-service/create_order", SpanKind.SERVER)
        assert parent_of(order) == int(PARENT_ID, 16)
        assert order.parent is not None
        assert order.parent.is_remote
        assert order.resource.attributes["service.name"] == "order-service"
        assert order.attributes is not None
        assert order.attributes["rpc.method"] == "create_order"
        assert order.attributes["messaging.system"] == "nats"
        assert order.attributes["messaging.consumer.group.name"] == "order-service"
        for service, method in (("pricing-service", "get_price"), ("risk-service", "assess_risk")):
            call = span(f"{service}/{method}", SpanKind.CLIENT)
            served = span(f"{service}/{method}", SpanKind.SERVER)
            assert parent_of(call) == order.context.span_id
            assert parent_of(served) == call.context.span_id
            assert served.resource.attributes["service.name"] == service
            assert served.context.trace_state.get("congo") == "t61rcWkgMzE"
        publish = span("publish events.order.created", SpanKind.PRODUCER)
        process = span("process events.order.created", SpanKind.CONSUMER)
        assert parent_of(publish) == order.context.span_id
        assert parent_of(process) == publish.context.span_id
        assert process.resource.attributes["service.name"] == "risk-service"
        assert process.attributes is not None
        assert process.attributes["messaging.destination.name"] == "events.order.created"
        # A durable delivery (risk-service keeps positions from the stream): the event's id.
        assert publish.attributes is not None
        event_id = publish.attributes["messaging.message.id"]
        assert process.attributes["messaging.message.id"] == event_id
        assert process.attributes["messaging.message.delivery_attempt"] == 1


class TestSampling:
    """With `sample_ratio`, aegis decides which new traces to record and follows a caller's."""

    @pytest.mark.parametrize(
        ("traceparent", "recorded"),
        [(TRACEPARENT, True), (TRACEPARENT[:-2] + "00", False), (None, False)],
    )
    async def test_a_trace_is_recorded_as_its_caller_decided_or_new_ones_at_the_ratio(
        self,
        instance_settings: InstanceSettings,
        nats_client: NatsClient,
        namespace: str,
        traceparent: str | None,
        recorded: bool,
    ) -> None:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        enable_tracing(provider, sample_ratio=0.0)
        try:
            reply = await greet(instance_settings, nats_client, namespace, traceparent)
        finally:
            disable_tracing()
        names = sorted(s.name for s in exporter.get_finished_spans())
        if recorded:
            assert names == [
                "greeter/greet",
                "process events.greeter.greeted",
                "publish events.greeter.greeted",
            ]
        else:
            assert names == []
        trace_id = from_json(reply.data)["data"]
        assert len(trace_id) == 32
        if traceparent:
            assert trace_id == TRACE_ID


class TestWithoutTheExtras:
    """Without tracing and metrics switched on, neither library is imported, nor needed."""

    def test_a_service_runs_without_importing_opentelemetry_or_prometheus_client(
        self, nats_url: str, namespace: str
    ) -> None:
        script = textwrap.dedent(
            f"""
            import sys

            class Missing:
                tried = []

                def find_spec(self, name, path=None, target=None):
                    if name.split(".")[0] in ("opentelemetry", "prometheus_client"):
                        self.tried.append(name)
                        raise ImportError(f"{{name}} is not installed")
                    return None

            sys.meta_path.insert(0, Missing())

            import aegis_actors
            from aegis_actors import (
                ActorSystem, Client, ConnectionSettings, InstanceSettings, start_instance
            )
            from services.trading.pricing import PricingService

            async def main():
                settings = InstanceSettings(
                    nats=ConnectionSettings(url="{nats_url}"), namespace="{namespace}",
                    settings={{"publish_every": 0}},
                )
                async with ActorSystem() as system:
                    await start_instance(system, PricingService, settings)
                    async with Client(url="{nats_url}", namespace="{namespace}") as client:
                        await client.wait_for_instances("pricing-service", 1)
                        await client.call("pricing-service", "get_price", {{"symbol": "ACME"}})
                try:
                    aegis_actors.enable_tracing()
                except ImportError as exc:
                    print(exc)

            aegis_actors.run(main)
            print("tried", Missing.tried)
            """
        )
        result = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[-2] == "tracing needs OpenTelemetry: pip install 'aegis-actors[otel]'"
        assert lines[-1] == "tried ['opentelemetry']"
