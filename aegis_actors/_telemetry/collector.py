"""`RuntimeCollector`: the runtime's `aegis_*` metrics, read from its parts when scraped.

Imported by `enable_metrics` only (it imports prometheus-client). Every
figure is read from counters the runtime keeps anyway (`tracked`), so a
request pays for none of them but its latency bucket. The metric list, with
labels, is in docs/operations/observing.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from aegis_actors._registry.models import InstanceStatus
from aegis_actors._telemetry import tracked
from aegis_actors._telemetry.histogram import LatencyHistogram

_SERVER = ("service", "instance")
#: `DiscoveryStatistics` counters -> help (exposed as `aegis_discovery_{name}_total`).
_DISCOVERY = {
    "hits": "Instance lookups answered from the caller's current view of the registry.",
    "misses": "Instance lookups that had to read the registry (unknown or expired view).",
    "stale_serves": "Calls that used a view known to be stale (watch broken, registry down).",
    "evictions": "Instances dropped after 'no responders' (the call failed over to another).",
    "loads": "Reads of the registry for the caller's misses.",
    "load_failures": "Reads of the registry that failed.",
}


class _Family:
    """Samples of one metric summed by label values (two parts may share labels)."""

    def __init__(
        self,
        kind: type[CounterMetricFamily | GaugeMetricFamily],
        name: str,
        help_: str,
        labels: Iterable[str],
    ) -> None:
        self.kind = kind
        self.name = name
        self.help = help_
        self.labels = tuple(labels)
        self.values: dict[tuple[str, ...], float] = defaultdict(float)

    def add(self, labels: tuple[str, ...], value: float) -> None:
        self.values[labels] += value

    def metric(self) -> Metric:
        family = self.kind(self.name, self.help, labels=self.labels)
        for labels, value in self.values.items():
            family.add_metric(labels, value)
        return family


class _Histograms:
    """Latency histograms summed by label values."""

    def __init__(self, name: str, help_: str, labels: Iterable[str]) -> None:
        self.family = HistogramMetricFamily(name, help_, labels=tuple(labels))
        self.summed: dict[tuple[str, ...], LatencyHistogram] = {}

    def add(self, labels: tuple[str, ...], histogram: LatencyHistogram) -> None:
        into = self.summed.get(labels)
        if into is None:
            into = self.summed[labels] = LatencyHistogram()
        into.merge(histogram)

    def metric(self) -> Metric:
        for labels, histogram in self.summed.items():
            self.family.add_metric(list(labels), histogram.cumulative(), histogram.sum_ns / 1e9)
        return self.family


def _counter(name: str, help_: str, *labels: str) -> _Family:
    return _Family(CounterMetricFamily, name, help_, labels)


def _gauge(name: str, help_: str, *labels: str) -> _Family:
    return _Family(GaugeMetricFamily, name, help_, labels)


class RuntimeCollector(Collector):
    """Collects `aegis_*` from the servers, callers, supervisors and systems of this process."""

    def collect(self) -> Iterator[Metric]:
        yield from self._servers()
        yield from self._callers()
        yield from self._actors()

    def _servers(self) -> Iterator[Metric]:
        requests = _counter(
            "aegis_requests", "Requests served (replied to), by method.", *_SERVER, "method"
        )
        errors = _counter(
            "aegis_request_errors",
            "Requests answered with an error reply, by method and error code.",
            *_SERVER,
            "method",
            "code",
        )
        refused = _counter(
            "aegis_requests_refused",
            "Requests answered without running their handler, by reason (standby).",
            *_SERVER,
            "reason",
        )
        in_flight = _gauge(
            "aegis_requests_in_flight", "Requests started and not yet answered.", *_SERVER
        )
        mailbox = _gauge(
            "aegis_mailbox_messages",
            "Messages waiting in the service's mailbox (requests and events).",
            *_SERVER,
        )
        capacity = _gauge("aegis_mailbox_capacity", "Size of the service's mailbox.", *_SERVER)
        published = _counter(
            "aegis_events_published", "Events published, by subject.", *_SERVER, "subject"
        )
        handled = _counter(
            "aegis_events_handled", "Events handed to a handler, by handler.", *_SERVER, "handler"
        )
        handler_errors = _counter(
            "aegis_event_handler_errors", "Events whose handler raised.", *_SERVER, "handler"
        )
        redelivered = _counter(
            "aegis_event_redeliveries",
            "Durable deliveries that were not an event's first.",
            *_SERVER,
            "handler",
        )
        retried = _counter(
            "aegis_event_retries",
            "Durable events a handler failed (or put off) that will come again.",
            *_SERVER,
            "handler",
        )
        dead = _counter(
            "aegis_event_dead_letters",
            "Durable events moved to the dead letters after their last delivery.",
            *_SERVER,
            "handler",
        )
        status = _gauge(
            "aegis_instance_status",
            "1 for the instance's status (ACTIVE, STANDBY, UNHEALTHY), 0 for the others.",
            *_SERVER,
            "status",
        )
        changes = _counter(
            "aegis_leadership_changes",
            "Times the instance became ACTIVE in its sticky-active group or stopped being it.",
            *_SERVER,
            "group",
        )
        active = _gauge(
            "aegis_leadership_active",
            "1 while the instance is the ACTIVE one of its sticky-active group.",
            *_SERVER,
            "group",
        )
        fencing = _gauge(
            "aegis_leadership_revision",
            "The fencing revision (token) of the instance's leadership, while ACTIVE.",
            *_SERVER,
            "group",
        )
        latency = _Histograms(
            "aegis_request_duration_seconds",
            "Time from taking a request from the mailbox to sending its reply, by method.",
            (*_SERVER, "method"),
        )
        for instance_id, server in list(tracked.SERVERS.items()):
            own = (server.service.service_name, instance_id)
            dispatcher = server.dispatcher
            endpoint_stats = [
                *dispatcher.stats.values(),
                *(r.stats for r in dispatcher.routes.values()),
            ]
            for stats in endpoint_stats:
                requests.add((*own, stats.name), stats.num_requests)
                for code, count in stats.errors_by_code.items():
                    errors.add((*own, stats.name, code), count)
            in_flight.add(own, dispatcher.in_flight)
            for reason, count in dispatcher.refused_count.items():
                refused.add((*own, reason), count)
            queued = server.service.actor_ref.mailbox_statistics()
            mailbox.add(own, queued.queued + queued.system_queued)
            capacity.add(own, queued.capacity)
            for subject, count in server.published.items():
                published.add((*own, subject), count)
            for stats in server.events.stats.values():
                handler = (*own, stats.name)
                handled.add(handler, stats.num_requests)
                handler_errors.add(handler, stats.num_errors)
                redelivered.add(handler, stats.redelivered)
                retried.add(handler, stats.retried)
                dead.add(handler, stats.dead_lettered)
            current = server.wiring.status.value
            for each in InstanceStatus:
                status.add((*own, each.value), float(each is current))
            leadership = server.wiring.leadership.value
            if leadership is not None:
                group = (*own, leadership.group)
                changes.add(group, server.leadership_changes)
                active.add(group, float(leadership.active))
                if leadership.active and leadership.revision is not None:
                    fencing.add(group, leadership.revision)
            histograms: dict[str, LatencyHistogram] = dispatcher.latency
            for method, histogram in histograms.items():
                latency.add((*own, method), histogram)
        for family in (
            requests, errors, refused, in_flight, mailbox, capacity, published, handled,
            handler_errors, redelivered, retried, dead, status, changes, active, fencing,
            latency,
        ):  # fmt: skip
            yield family.metric()
        yield from self._heartbeats()

    def _heartbeats(self) -> Iterator[Metric]:
        written = _counter("aegis_heartbeats", "Heartbeats written to the registry.", *_SERVER)
        failed = _counter(
            "aegis_heartbeat_failures", "Heartbeats the registry did not take.", *_SERVER
        )
        for instance_id, heartbeat in list(tracked.HEARTBEATS.items()):
            own = (heartbeat.instance.service_name, instance_id)
            written.add(own, heartbeat.beats)
            failed.add(own, heartbeat.failed_beats)
        yield written.metric()
        yield failed.metric()

    def _callers(self) -> Iterator[Metric]:
        calls = _counter(
            "aegis_calls", "Calls made with call(), by called service.", *_SERVER, "target"
        )
        errors = _counter(
            "aegis_call_errors",
            "Calls that raised (error replies included), by called service and error code.",
            *_SERVER,
            "target",
            "code",
        )
        retries = _counter(
            "aegis_call_retries", "Attempts after a call's first (failover, retry).", *_SERVER
        )
        latency = _Histograms(
            "aegis_call_duration_seconds",
            "Time a call() took, retries included, by called service.",
            (*_SERVER, "target"),
        )
        discovery = {
            field: _counter(f"aegis_discovery_{field}", help_, *_SERVER)
            for field, help_ in _DISCOVERY.items()
        }
        synced = _gauge(
            "aegis_discovery_synced",
            "1 while the caller's view of the registry is current (its watch is live).",
            *_SERVER,
        )
        for caller in list(tracked.CALLERS):
            own = (caller.owner or "", caller.instance_id)
            retries.add(own, caller.retries)
            cache = caller.cache
            if cache is not None:
                seen = cache.statistics()
                for field, counter in discovery.items():
                    counter.add(own, getattr(seen, field))
                synced.add(own, float(seen.synced))
            for target, tally in list(caller.targets.items()):
                calls.add((*own, target), tally.calls)
                for code, count in tally.errors.items():
                    errors.add((*own, target, code), count)
                latency.add((*own, target), tally.latency)
        yield latency.metric()
        for family in (calls, errors, retries, *discovery.values(), synced):
            yield family.metric()

    def _actors(self) -> Iterator[Metric]:
        restarts = _counter(
            "aegis_actor_restarts", "Restarts of a supervisor's child.", "supervisor", "child"
        )
        for supervisor in list(tracked.SUPERVISORS):
            path = _path_of(supervisor)
            if path is None:
                continue
            for child_id, count in supervisor.restart_counts().items():
                restarts.add((path, child_id), count)
        dead = _counter(
            "aegis_dead_letters", "Messages sent to an actor that had stopped.", "system"
        )
        for system in list(tracked.SYSTEMS):
            dead.add((system.name,), system.statistics().dead_letters)
        yield restarts.metric()
        yield dead.metric()


def _path_of(actor: Any) -> str | None:
    ref = getattr(actor, "actor_ref", None)
    return None if ref is None else str(ref.path)
