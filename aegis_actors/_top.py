"""`aegis top`: a live view of a fleet, from any NATS URL, with no management actor needed.

Each refresh reads the registry (instances, status, heartbeat age), the
service definitions, and every instance's `$SRV.STATS` (requests, errors,
processing time); call rates and mean latencies are the differences
between two refreshes (the first shows the mean since the instance started). Sampling and drawing
are separate, so the drawing is a pure function of a `FleetView` (tests
compare its text).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import anyio
from pydantic import ValidationError
from pydantic_core import from_json
from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from aegis_actors._buckets import Buckets
from aegis_actors._connection import connected_url
from aegis_actors._errors import BucketNotFoundError, ConfigError, StoreUnavailableError
from aegis_actors._kv import KVBucket
from aegis_actors._mgmt.models import ServiceDefinition
from aegis_actors._models import utc_now
from aegis_actors._registry.models import InstanceStatus, ServiceInstance
from aegis_actors._registry.store import RegistryStore
from aegis_actors._subjects import ControlVerb, control
from aegis_actors._text import plural, printable
from aegis_actors._transport import Msg, NatsClient

#: Seconds an instance gets to answer `$SRV.STATS` before it shows as "?".
STATS_TIMEOUT: Final = 0.5
STATUS_STYLE: Final = {
    InstanceStatus.ACTIVE: "bold green",
    InstanceStatus.STANDBY: "bold blue",
    InstanceStatus.UNHEALTHY: "bold red",
}


@dataclass(frozen=True, slots=True)
class InstanceView:
    instance: ServiceInstance
    heartbeat_age: float
    requests: int | None
    """Requests served so far (None if `$SRV.STATS` did not answer)."""
    errors: int | None
    rate: float | None
    """Calls per second since the previous sample (None on the first)."""
    latency: float | None = None
    """Mean seconds per request since the previous sample (on the first: since start;
    None without requests)."""


@dataclass(frozen=True, slots=True)
class ServiceView:
    name: str
    definition: ServiceDefinition | None
    instances: list[InstanceView]


@dataclass(frozen=True, slots=True)
class FleetView:
    at: datetime
    url: str
    namespace: str
    services: list[ServiceView]
    problem: str | None = None
    """Why part of the picture is missing (e.g. JetStream unreachable)."""


@dataclass
class FleetSampler:
    """Takes `FleetView`s; keeps the previous counts to turn them into rates."""

    client: NatsClient
    namespace: str = ""
    _previous: dict[str, tuple[float, int, int]] = field(default_factory=dict)

    async def sample(self) -> FleetView:
        buckets = Buckets(self.namespace)
        js = self.client.jetstream(timeout=2.0)
        problem = None
        instances: list[ServiceInstance] = []
        definitions: dict[str, ServiceDefinition] = {}
        try:
            instances = await (await RegistryStore.open(js, buckets)).instances()
            definitions = await _definitions(KVBucket(js, buckets.definitions))
        except (StoreUnavailableError, ConfigError) as exc:
            problem = str(exc)
        stats = await self._stats(instances)
        now = utc_now()
        names = sorted({i.service_name for i in instances} | set(definitions))
        services = []
        for name in names:
            views = [
                self._view(i, now, stats.get(i.instance_id))
                for i in instances
                if i.service_name == name
            ]
            services.append(ServiceView(name, definitions.get(name), views))
        return FleetView(now, connected_url(self.client), self.namespace, services, problem)

    def _view(
        self, instance: ServiceInstance, now: datetime, stats: tuple[int, int, int] | None
    ) -> InstanceView:
        age = max(0.0, (now - instance.last_heartbeat).total_seconds())
        if stats is None:
            return InstanceView(instance, age, None, None, None)
        requests, errors, busy_ns = stats
        rate = None
        clock = time.monotonic()
        previous = self._previous.get(instance.instance_id)
        served, spent = requests, busy_ns
        if previous is not None and clock > previous[0]:
            rate = max(0, requests - previous[1]) / (clock - previous[0])
            if requests >= previous[1]:  # else the instance restarted: since start
                served, spent = requests - previous[1], busy_ns - previous[2]
        self._previous[instance.instance_id] = (clock, requests, busy_ns)
        latency = spent / served / 1e9 if served > 0 else None
        return InstanceView(instance, age, requests, errors, rate, latency)

    async def _stats(self, instances: list[ServiceInstance]) -> dict[str, tuple[int, int, int]]:
        found: dict[str, tuple[int, int, int]] = {}

        async def ask(instance: ServiceInstance) -> None:
            subject = control(ControlVerb.STATS, instance.service_name, instance.instance_id)
            try:
                reply: Msg = await self.client.request(subject, b"", timeout=STATS_TIMEOUT)
                endpoints = from_json(reply.data).get("endpoints") or []
                found[instance.instance_id] = (
                    sum(int(e.get("num_requests", 0)) for e in endpoints),
                    sum(int(e.get("num_errors", 0)) for e in endpoints),
                    sum(int(e.get("processing_time", 0)) for e in endpoints),
                )
            except Exception:  # no answer, or not a micro service: shown as "?"
                return

        async with anyio.create_task_group() as tg:
            for instance in instances:
                tg.start_soon(ask, instance)
        return found


async def _definitions(bucket: KVBucket) -> dict[str, ServiceDefinition]:
    try:
        entries = await bucket.entries()
    except BucketNotFoundError:
        return {}  # no definitions yet: every service is "undefined"
    found = {}
    for entry in entries:
        try:
            definition = ServiceDefinition.model_validate_json(entry.value)
        except ValidationError:
            continue
        found[definition.service_name] = definition
    return found


def _age(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 60 else f"{seconds / 60:.0f}m"


def _number(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "?"
    return f"{value:,.{digits}f}"


def _latency(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 0.01:
        return f"{seconds * 1000:.2f}ms"
    return f"{seconds * 1000:.0f}ms" if seconds < 10 else f"{seconds:.0f}s"


def render(view: FleetView) -> RenderableType:
    """The frame for `view`: a header, then one small table per service (fits 80 columns)."""
    count = sum(len(s.instances) for s in view.services)
    parts: list[RenderableType] = [
        Text.assemble(
            ("aegis top", "bold"),
            f"  {view.url}",
            f"  namespace {view.namespace}" if view.namespace else "",
            f"  {plural(len(view.services), 'service')}, {plural(count, 'instance')}",
            f"  {view.at.strftime('%H:%M:%S')} UTC",
        )
    ]
    for service in view.services:
        definition = (
            Text(printable(f"{service.definition.owner}, v{service.definition.version}"))
            if service.definition
            else Text("undefined", style="dim")
        )
        table = Table(
            title=Text.assemble((printable(service.name), "bold"), "  ", definition),
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
        )
        for column, justify in (
            ("INSTANCE", "left"), ("STATUS", "left"), ("VERSION", "left"), ("BEAT", "right"),
            ("RATE/S", "right"), ("LATENCY", "right"), ("REQS", "right"), ("ERRS", "right"),
        ):  # fmt: skip
            table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        if not service.instances:
            table.add_row(Text("no instances", style="dim"), "", "", "", "", "", "", "")
        for item in service.instances:
            status = item.instance.status
            table.add_row(
                Text(printable(item.instance.instance_id)),
                Text(status.value, style=STATUS_STYLE.get(status, "")),
                Text(printable(item.instance.version)),
                _age(item.heartbeat_age),
                _number(item.rate, 1),
                _latency(item.latency),
                _number(item.requests),
                Text(_number(item.errors), style="red" if item.errors else ""),
            )
        parts.append(table)
    if view.problem:
        parts.append(Text(printable(f"partial view: {view.problem}"), style="yellow"))
    if not view.services:
        parts.append(Text("no services registered or defined", style="dim"))
    return Group(*parts)
