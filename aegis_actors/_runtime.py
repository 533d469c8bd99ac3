"""Running a fleet from a config file: the supervision tree, the embedded server, signals.

```
{name}                 root Supervisor (strategy and limits from [supervisor])
├── {service}          one Supervisor per service (one_for_one)
│   ├── {instanceId}   one instance tree per instance (see aegis_actors._instance)
│   └── ...
└── ...
```

Stopping (SIGINT, SIGTERM) stops the tree in reverse order, so every
instance deregisters, drains and closes; a second signal cancels at once.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Final

import anyio
import structlog

from aegis_actors._actor import Actor
from aegis_actors._child_spec import ChildSpec
from aegis_actors._config_file import LoadedConfig
from aegis_actors._errors import ActorStartError, NatsServerError, PortInUseError
from aegis_actors._instance_tree import InstancePlan, instance_spec, plan_instance
from aegis_actors._nats_server import NatsServer, auth_config
from aegis_actors._ref import ActorRef
from aegis_actors._supervisor import Supervisor
from aegis_actors._system import ActorSystem

log = structlog.get_logger("aegis_actors.runtime")

#: Extra seconds a service supervisor gets, beyond its slowest instance, to stop.
_STOP_MARGIN: Final = 5.0


@dataclass
class Fleet:
    """What `start_fleet` started: the plans, the tree, and the server it may own."""

    config: LoadedConfig
    url: str
    plans: dict[str, list[InstancePlan]]
    root: ActorRef | None = None
    server: NatsServer | None = None
    web: ActorRef | None = None
    """The web monitor's tree, with `[web]`."""
    web_url: str | None = None
    metrics_url: str | None = None
    """Where `/metrics` is served, with `[metrics]`."""
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    @property
    def instance_count(self) -> int:
        return sum(len(p) for p in self.plans.values())


def plan_fleet(config: LoadedConfig, url: str | None = None) -> dict[str, list[InstancePlan]]:
    """One plan per instance, every setting validated, nothing started.

    `url` replaces the file's (for an embedded server); None keeps it.
    """
    nats = config.connection(url)
    namespace = config.fleet.namespace
    return {
        service.name: [
            plan_instance(
                service.cls, service.instance_settings(nats, namespace, config.fleet.events)
            )
            for _ in range(service.config.instances)
        ]
        for service in config.services
    }


def fleet_tree(config: LoadedConfig, plans: dict[str, list[InstancePlan]]) -> ChildSpec:
    """The root supervisor's child spec."""
    supervisor = config.fleet.supervisor
    service_specs = []
    for name, instances in plans.items():
        specs = [instance_spec(plan) for plan in instances]
        stop = max(s.shutdown or 0.0 for s in specs) * len(specs) + _STOP_MARGIN

        def make_service(specs: list[ChildSpec] = specs) -> Actor:
            return Supervisor(specs)

        service_specs.append(ChildSpec(name, make_service, shutdown=stop))

    def make_root() -> Actor:
        return Supervisor(
            service_specs,
            strategy=supervisor.strategy,
            max_restarts=supervisor.max_restarts,
            within_seconds=supervisor.within_seconds,
        )

    shutdown = sum(s.shutdown or 0.0 for s in service_specs) + _STOP_MARGIN
    return ChildSpec(config.fleet.name, make_root, shutdown=shutdown)


async def start_fleet(system: ActorSystem, config: LoadedConfig) -> Fleet:
    """Start the embedded server if the file names none, then every instance.

    Raises:
        NatsServerError: the embedded server could not start.
        ActorStartError: an instance could not start (e.g. NATS unreachable).
    """
    server = None
    if config.fleet.embedded_server:
        embedded = config.fleet.embedded
        server = NatsServer(
            port=embedded.port,
            store_dir=embedded.store_dir,
            extra_config=auth_config(embedded.auth),
        )
        await anyio.to_thread.run_sync(server.start)
        log.info(
            "embedded nats-server started",
            url=server.url,
            store_dir=str(server.store_dir),
            auth=str(embedded.auth) if embedded.auth else None,
        )
    url = server.url if server else None
    fleet = Fleet(
        config, ",".join(config.connection(url).servers), plan_fleet(config, url), server=server
    )
    try:
        # Before the instances start: they read the switches when they do.
        await _start_telemetry(fleet)
        spec = fleet_tree(config, fleet.plans)
        fleet.root = await system.spawn(spec.start, name=spec.id, shutdown=spec.shutdown)
        if config.fleet.web is not None:
            await _start_web(system, fleet, url)
    except BaseException:
        await fleet._stack.aclose()
        if server is not None:
            await anyio.to_thread.run_sync(server.close)
        raise
    return fleet


async def _start_telemetry(fleet: Fleet) -> None:
    """`[metrics]`: serve `/metrics`; `[tracing]`: a tracer provider per service, one exporter."""
    settings = fleet.config.fleet
    if settings.tracing is not None:
        from aegis_actors._telemetry.setup import (  # the `otel` extra (checked at load)
            ServiceProviders,
            disable_tracing,
            enable_tracing,
        )

        providers = ServiceProviders(settings.tracing)
        enable_tracing(providers, sample_ratio=providers.sample_ratio)
        fleet._stack.callback(providers.shutdown)
        fleet._stack.callback(disable_tracing)
    if settings.metrics is not None:
        from aegis_actors._telemetry.server import serve_metrics  # the `metrics` extra

        metrics = settings.metrics
        fleet.metrics_url = await fleet._stack.enter_async_context(
            serve_metrics(metrics.host, metrics.port)
        )
        log.info("metrics served", url=fleet.metrics_url)


async def _start_web(system: ActorSystem, fleet: Fleet, url: str | None) -> None:
    """The web monitor of `[web]`: a NATS client of the fleet like any other."""
    from aegis_actors._web.monitor import web_tree  # the `web` extra (checked at load)

    config = fleet.config
    assert config.fleet.web is not None
    urls: list[str] = []
    spec = web_tree(
        config.connection(url),
        config.fleet.web,
        namespace=config.fleet.namespace,
        on_listening=urls.append,
    )
    fleet.web = await system.spawn(spec.start, name=spec.id, shutdown=spec.shutdown)
    fleet.web_url = urls[0]


async def stop_fleet(system: ActorSystem, fleet: Fleet) -> None:
    """Stop the web monitor, the tree (reverse order, graceful), then the embedded server."""
    if fleet.web is not None and fleet.web.is_alive:
        await system.stop(fleet.web)
    if fleet.root is not None and fleet.root.is_alive:
        await system.stop(fleet.root)
    await fleet._stack.aclose()
    if fleet.server is not None:
        await anyio.to_thread.run_sync(fleet.server.close)


async def run_fleet(
    config: LoadedConfig,
    *,
    ready: Callable[[Fleet], Awaitable[None]] | None = None,
) -> int:
    """Run until SIGINT/SIGTERM (or the root supervisor gives up); return an exit code.

    0 after a graceful stop; 1 if the fleet could not start or its root
    failed; 130 if a second signal cut the graceful stop short.
    """
    started: list[Fleet] = []
    forced = False
    try:
        async with ActorSystem(config.fleet.name) as system:
            try:
                fleet = await start_fleet(system, config)
            except NatsServerError as exc:
                hint = (
                    f": set another [embedded] port in {config.path}, or 0 for a free one"
                    if isinstance(exc, PortInUseError)
                    else ""
                )
                log.error("embedded nats-server did not start", error=f"{exc}{hint}")
                return 1
            except ActorStartError as exc:
                log.error("fleet did not start", error=_root_cause(exc))
                return 1
            started.append(fleet)
            root = fleet.root
            assert root is not None
            # Signals are ours before `ready` says so: a Ctrl-C right after the
            # "running" line must stop the fleet gracefully, not interrupt it.
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                if ready is not None:
                    await ready(fleet)
                failed = False
                async with anyio.create_task_group() as tg:

                    async def watch_root() -> None:
                        nonlocal failed
                        reason = await root.wait_stopped()
                        failed = True
                        log.error("root supervisor stopped", reason=repr(reason))
                        tg.cancel_scope.cancel()

                    async def first_signal() -> None:
                        async for received in signals:
                            log.info("stopping gracefully", signal=signal.Signals(received).name)
                            break
                        tg.cancel_scope.cancel()

                    tg.start_soon(watch_root)
                    tg.start_soon(first_signal)

                async with anyio.create_task_group() as tg:

                    async def second_signal() -> None:
                        nonlocal forced
                        async for _ in signals:
                            forced = True
                            log.warning("second signal: cancelling every actor now")
                            # The graceful stop below waits on those actors:
                            # cancel it too. What must still happen is after
                            # the `async with`.
                            system.cancel()
                            tg.cancel_scope.cancel()
                            return

                    tg.start_soon(second_signal)
                    await stop_fleet(system, fleet)
                    tg.cancel_scope.cancel()
    finally:
        # The embedded server is a process of its own session (a terminal's
        # Ctrl-C does not reach it): whatever happened, it must not outlive us.
        with anyio.CancelScope(shield=True):
            for fleet in started:
                if fleet.server is not None:
                    await anyio.to_thread.run_sync(fleet.server.close)
    if forced:
        log.warning("stopped by a second signal", instances=fleet.instance_count)
        return 130
    log.info("stopped", instances=fleet.instance_count)
    return 1 if failed else 0


def _root_cause(exc: BaseException) -> str:
    while isinstance(exc, ActorStartError):
        exc = exc.reason
    return str(exc)
