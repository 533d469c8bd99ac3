"""Metrics a `ServiceActor` declares (`Counter`, `Gauge`, `Histogram`), and switching them on.

Declared in the class body, in one line each:

    class OrderService(ServiceActor):
        orders = Counter("trading_orders", "Orders placed, by outcome.", ["outcome"])

        @rpc
        async def create_order(self, params: OrderRequest) -> Order:
            ...
            self.orders.labels(outcome="accepted").inc()

`self.orders` is the metric with this instance's `service` and `instance`
labels already set. They are prometheus-client metrics in its default
registry (served on `/metrics` beside the runtime's own `aegis_*` ones),
made when first used with metrics on; with metrics off (no `[metrics]`,
no `enable_metrics()`) `self.orders` is a stand-in whose methods do
nothing, and prometheus-client is not imported.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, ClassVar

from aegis_actors._telemetry.state import TELEMETRY

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

_lock = threading.Lock()
#: name -> the prometheus-client metric made for it (one per process).
_made: dict[str, Any] = {}


def enable_metrics() -> CollectorRegistry:
    """Switch metrics on for this process and return the registry `/metrics` serves.

    It is prometheus-client's default registry, with the runtime's collector
    (`aegis_*`) added once; metrics of your own registered there are served
    too. Call it before services start (`aegis run` does, with `[metrics]`):
    an instance that started before keeps its metrics off.

    Raises:
        ImportError: prometheus-client is not installed (the `metrics` extra).
    """
    with _lock:
        try:
            from prometheus_client import REGISTRY
        except ImportError:
            raise ImportError(
                "metrics need prometheus-client: pip install 'aegis-actors[metrics]'"
            ) from None
        from aegis_actors._telemetry.collector import RuntimeCollector

        if not TELEMETRY.metrics:
            REGISTRY.register(RuntimeCollector())
            TELEMETRY.metrics = True
        return REGISTRY


def serve_metrics(host: str = "127.0.0.1", port: int = 9464) -> AbstractAsyncContextManager[str]:
    """Switch metrics on and serve `http://{host}:{port}/metrics` while inside; yields the URL.

    For a runtime started in your own program (`aegis run` serves `[metrics]`
    itself). `port=0` picks a free port.

    Example:

        async with serve_metrics(port=9464) as url, ActorSystem() as system:
            ...

    Raises:
        ImportError: the `metrics` extra is not installed.
        OSError: the port could not be bound.
    """
    try:
        from aegis_actors._telemetry.server import serve_metrics as serve
    except ImportError:
        raise ImportError(
            "metrics need prometheus-client and aiohttp: pip install 'aegis-actors[metrics]'"
        ) from None
    return serve(host, port)


def metrics_enabled() -> bool:
    """True once `enable_metrics()` ran in this process."""
    return TELEMETRY.metrics


class _Declared:
    """A metric declared on a `ServiceActor` class; read on an instance, it is bound to it."""

    kind: ClassVar[str]

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        *,
        unit: str = "",
        buckets: Sequence[float] | None = None,
    ) -> None:
        if name.startswith("aegis_"):
            raise ValueError(f"metric {name!r}: names starting with aegis_ are the runtime's")
        for label in labels:
            if label in ("service", "instance") or label.startswith("__"):
                raise ValueError(f"metric {name!r}: label {label!r} is reserved")
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        self.unit = unit
        self.buckets = tuple(buckets) if buckets is not None else None
        self.attribute = name

    def __set_name__(self, owner: type, attribute: str) -> None:
        self.attribute = attribute

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        identity = getattr(instance, "actor_instance", None)
        if identity is None:
            raise RuntimeError(
                f"{type(instance).__name__}.{self.attribute}: a metric is bound to a running "
                "instance; use it from on_start or a handler"
            )
        bound: Any = (
            _Bound(self._metric(), (identity.service_name, identity.instance_id), self.labels)
            if TELEMETRY.metrics
            else _OFF
        )
        # Cached on the instance: later reads are a plain attribute lookup.
        instance.__dict__[self.attribute] = bound
        return bound

    def _metric(self) -> Any:
        import prometheus_client

        with _lock:
            metric = _made.get(self.name)
            if metric is None:
                cls = getattr(prometheus_client, self.kind)
                options: dict[str, Any] = {"unit": self.unit}
                if self.buckets is not None:
                    options["buckets"] = self.buckets
                metric = _made[self.name] = cls(
                    self.name, self.documentation, ("service", "instance", *self.labels), **options
                )
            elif type(metric).__name__ != self.kind or metric._labelnames[2:] != self.labels:
                raise ValueError(
                    f"metric {self.name!r} is declared twice, as different metrics "
                    f"({type(metric).__name__}{metric._labelnames[2:]} and "
                    f"{self.kind}{self.labels})"
                )
            return metric


class Counter(_Declared):
    """A count that only goes up (`inc`); exposed as `{name}_total`."""

    kind = "Counter"


class Gauge(_Declared):
    """A value that goes up and down (`set`, `inc`, `dec`)."""

    kind = "Gauge"


class Histogram(_Declared):
    """Observed values in buckets (`observe`); `buckets` default to prometheus-client's."""

    kind = "Histogram"


class _Bound:
    """A declared metric with the instance's labels set."""

    __slots__ = ("_extra", "_metric", "_own", "_unlabelled")

    def __init__(self, metric: Any, own: tuple[str, str], extra: tuple[str, ...]) -> None:
        self._metric = metric
        self._own = own
        self._extra = extra
        self._unlabelled = None if extra else metric.labels(*own)

    def labels(self, *values: str, **named: str) -> Any:
        """The child for the metric's own labels (by position or by name)."""
        if named:
            values = tuple(named[label] for label in self._extra)
        return self._metric.labels(*self._own, *values)

    def _child(self) -> Any:
        if self._unlabelled is None:
            raise ValueError(f"metric has labels {self._extra}: call .labels(...) first")
        return self._unlabelled

    def inc(self, amount: float = 1) -> None:
        self._child().inc(amount)

    def dec(self, amount: float = 1) -> None:
        self._child().dec(amount)

    def set(self, value: float) -> None:
        self._child().set(value)

    def observe(self, value: float) -> None:
        self._child().observe(value)


class _Off:
    """What a declared metric is with metrics off: every method does nothing."""

    __slots__ = ()

    def labels(self, *values: str, **named: str) -> _Off:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, value: float) -> None:
        pass


_OFF = _Off()
