"""The streams and consumers of durable events: made or checked here, named in `_buckets`.

One stream per event domain (`events-order` holds `events.order.>`): each
domain keeps its own limits (orders for months, prices for an hour), its own
leader on a cluster, and a domain that only carries core events is never
stored. An existing stream that already holds the domain's subjects (an
operator's own, `events.>` say) is used as it is. Dead letters have one
stream of their own (`aegis-dead-letters`). Replicas as for the KV buckets:
three on a JetStream cluster of three or more, else one.

Consumers: the instances of a service share one durable consumer per
handler, `{service}_{handler}` (each event to one of them); a broadcast
handler has one consumer per instance, `{instanceId}_{handler}`, deleted when
the instance stops (or by the server once it has been idle for
`BROADCAST_IDLE`, when the instance died).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import nats.js.errors
import structlog
from nats.js import api

from aegis_actors._buckets import Buckets
from aegis_actors._errors import ConfigError
from aegis_actors._events.options import DeliverPolicy, DurableOptions
from aegis_actors._events.settings import EventsSettings
from aegis_actors._kv import CLUSTER_REPLICAS
from aegis_actors._subjects import Subjects
from aegis_actors._transport import JetStreamContext, store_errors

log = structlog.get_logger("aegis_actors.events")

#: Seconds the server keeps a broadcast consumer nobody pulls from (its instance died).
BROADCAST_IDLE: Final = 300.0
_NOT_CLUSTERED: Final = 10074
_INSUFFICIENT_RESOURCES: Final = 10023
_STREAM_NAME_IN_USE: Final = 10058
_SUBJECTS_OVERLAP: Final = 10065
_CONSUMER_NOT_FOUND: Final = 10014
_DELIVER_POLICIES: Final = {
    DeliverPolicy.ALL: api.DeliverPolicy.ALL,
    DeliverPolicy.NEW: api.DeliverPolicy.NEW,
    DeliverPolicy.LAST: api.DeliverPolicy.LAST,
    DeliverPolicy.LAST_PER_SUBJECT: api.DeliverPolicy.LAST_PER_SUBJECT,
}


def consumer_name(service: str, handler: str, instance_id: str | None = None) -> str:
    """`{service}_{handler}` (shared), or `{instanceId}_{handler}` for a broadcast handler."""
    return f"{instance_id or service}_{handler}"


async def _create_stream(
    js: JetStreamContext, config: api.StreamConfig, replicas: int | None
) -> None:
    """Create a stream; with `replicas` None, three copies if the cluster can place them."""
    if replicas is not None:
        await js.add_stream(config.evolve(num_replicas=replicas))
        return
    try:
        await js.add_stream(config.evolve(num_replicas=CLUSTER_REPLICAS))
    except nats.js.errors.APIError as exc:
        if exc.err_code not in (_NOT_CLUSTERED, _INSUFFICIENT_RESOURCES):
            raise
        if exc.err_code == _INSUFFICIENT_RESOURCES:
            log.warning(
                "cluster cannot place the stream's copies: made with one",
                stream=config.name,
                replicas=CLUSTER_REPLICAS,
            )
        await js.add_stream(config.evolve(num_replicas=1))


async def _find(js: JetStreamContext, subjects: str) -> str | None:
    try:
        return await js.find_stream_name_by_subject(subjects)
    except nats.js.errors.NotFoundError:
        return None


async def _ensure(
    js: JetStreamContext, config: api.StreamConfig, replicas: int | None, explicit: set[str]
) -> str:
    """The stream holding `config.subjects[0]`: found, or made as `config` says."""
    assert config.name is not None
    assert config.subjects
    subjects = config.subjects[0]
    with store_errors(config.name):
        name = await _find(js, subjects)
        if name is None:
            try:
                await _create_stream(js, config, replicas)
                return config.name
            except nats.js.errors.APIError as exc:
                # Another instance made it first (racing starts).
                if exc.err_code not in (_STREAM_NAME_IN_USE, _SUBJECTS_OVERLAP):
                    raise
                name = await _find(js, subjects)
                if name is None:
                    raise
        info = await js.stream_info(name)
        if info.config.retention == api.RetentionPolicy.WORK_QUEUE:
            raise ConfigError(
                f"stream {name!r} holds {subjects} as a work queue, which lets one consumer "
                "take each event: durable handlers of several services need limits (or "
                "interest) retention"
            )
        if name == config.name and explicit:
            await _apply_limits(js, info.config, config, replicas, explicit)
    return name


async def _apply_limits(
    js: JetStreamContext,
    current: api.StreamConfig,
    wanted: api.StreamConfig,
    replicas: int | None,
    explicit: set[str],
) -> None:
    changes: dict[str, Any] = {}
    for key in explicit:
        field = "num_replicas" if key == "replicas" else key
        value = replicas if key == "replicas" else getattr(wanted, field)
        if value is not None and getattr(current, field) != value:
            changes[field] = value
    if changes:
        log.info("stream limits updated", stream=current.name, **changes)
        await js.update_stream(current.evolve(**changes))


def _limit(value: float | int, unlimited: float | int) -> Any:
    return unlimited if value in (0, -1) else value


async def ensure_event_stream(
    js: JetStreamContext,
    domain: str,
    *,
    subjects: Subjects,
    buckets: Buckets,
    settings: EventsSettings,
) -> str:
    """The name of the stream of `domain`'s events, made if no stream holds them.

    Raises:
        ConfigError: the stream holding them is a work queue.
        StoreUnavailableError: JetStream did not answer.
    """
    limits, explicit = settings.limits(domain)
    config = api.StreamConfig(
        name=buckets.event_stream(domain),
        description=f"aegis: the events of domain {domain!r} (events.{domain}.*)",
        subjects=[subjects.event_domain(domain)],
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        discard=api.DiscardPolicy.OLD,
        max_age=_limit(limits["max_age"], 0),
        max_bytes=limits["max_bytes"],
        max_msgs=limits["max_msgs"],
        duplicate_window=limits["duplicate_window"],
        allow_direct=True,
    )
    return await _ensure(js, config, limits["replicas"], explicit)


async def ensure_dead_letter_stream(
    js: JetStreamContext, *, subjects: Subjects, buckets: Buckets, settings: EventsSettings
) -> str:
    """The name of the dead-letter stream, made if missing."""
    explicit = {"max_age"} if "dead_letter_max_age" in settings.model_fields_set else set()
    config = api.StreamConfig(
        name=buckets.dead_letters,
        description="aegis: events their handlers gave up on (aegis events dead list)",
        subjects=[subjects.dead_letters()],
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        discard=api.DiscardPolicy.OLD,
        max_age=_limit(settings.dead_letter_max_age, 0),
        duplicate_window=settings.duplicate_window,
        allow_direct=True,
    )
    replicas = settings.replicas
    return await _ensure(js, config, replicas, explicit | ({"replicas"} if replicas else set()))


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    """One consumer of a durable handler, as `ensure_consumer` makes it."""

    stream: str
    name: str
    filter_subject: str
    options: DurableOptions
    broadcast: bool
    description: str = ""

    def config(self, start: int | None = None) -> api.ConsumerConfig:
        """The consumer's config; `start` (a stream sequence) overrides `deliver`."""
        options = self.options
        deliver: Any = options.deliver if start is None else start
        policy: dict[str, Any]
        if isinstance(deliver, DeliverPolicy):
            policy = {"deliver_policy": _DELIVER_POLICIES[deliver]}
        elif isinstance(deliver, datetime):
            policy = {"deliver_policy": api.DeliverPolicy.BY_START_TIME, "opt_start_time": deliver}
        else:
            policy = {
                "deliver_policy": api.DeliverPolicy.BY_START_SEQUENCE,
                "opt_start_seq": deliver,
            }
        return api.ConsumerConfig(
            name=self.name,
            durable_name=None if self.broadcast else self.name,
            description=self.description or None,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=options.ack_wait,
            # aegis counts deliveries itself and dead-letters the event: the
            # server's limit would only stop delivering it, silently.
            max_deliver=-1,
            filter_subject=self.filter_subject,
            max_ack_pending=options.max_ack_pending,
            inactive_threshold=BROADCAST_IDLE if self.broadcast else None,
            **policy,
        )


_UPDATABLE: Final = ("ack_wait", "max_ack_pending", "filter_subject", "description")


async def ensure_consumer(
    js: JetStreamContext, spec: ConsumerSpec, *, start: int | None = None, fresh: bool = False
) -> api.ConsumerInfo:
    """Make the consumer of `spec`, or bring an existing one's settings up to date.

    An existing consumer keeps its position (`deliver` applies when it is
    made); `fresh` deletes it first, so it starts over at `start` or `deliver`.
    """
    with store_errors(spec.stream, spec.name):
        if fresh:
            await delete_consumer(js, spec.stream, spec.name)
        try:
            info = await js.consumer_info(spec.stream, spec.name)
        except nats.js.errors.NotFoundError:
            return await js.add_consumer(spec.stream, spec.config(start))
        current = info.config
        wanted = spec.config()
        changes = {
            key: getattr(wanted, key)
            for key in _UPDATABLE
            if getattr(wanted, key) is not None and getattr(current, key) != getattr(wanted, key)
        }
        if changes:
            log.info("consumer updated", stream=spec.stream, consumer=spec.name, **changes)
            return await js.add_consumer(spec.stream, current.evolve(**changes))
        found: api.ConsumerInfo = info
        return found


async def delete_consumer(js: JetStreamContext, stream: str, name: str) -> bool:
    """Delete a consumer; False if it was not there."""
    try:
        return await js.delete_consumer(stream, name)
    except nats.js.errors.NotFoundError:
        return False


def is_consumer_gone(exc: BaseException) -> bool:
    """True if `exc` says the consumer (or its stream) does not exist."""
    return isinstance(exc, nats.js.errors.NotFoundError) or (
        isinstance(exc, nats.js.errors.APIError) and exc.err_code == _CONSUMER_NOT_FOUND
    )


def stream_names(infos: Iterable[api.StreamInfo], subjects: Subjects) -> list[str]:
    """The streams among `infos` that hold events of this namespace."""
    prefix = subjects.event("events.")
    return sorted(
        info.config.name
        for info in infos
        if info.config.name and any(s.startswith(prefix) for s in info.config.subjects or ())
    )
