"""What durable events take of JetStream, as NATS permissions (for `aegis auth`'s roles).

Built from the same names the code uses (`Buckets`, `Subjects`, `consumer_name`),
so the grants cannot drift from what the events actor, the runner and the
publisher send. A broadcast handler's consumer is named after the instance,
which a permission cannot spell ahead: its grants name any consumer of the
domain's stream (docs/operations/securing.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from aegis_actors._buckets import Buckets
from aegis_actors._events.dedupe import dedupe_bucket_spec
from aegis_actors._events.streams import consumer_name
from aegis_actors._subjects import DOMAIN_RE, JS_API, Subjects, event_domain

#: Where a delivery's acknowledgement goes: `$JS.ACK.{stream}.{consumer}.>`.
ACK_PREFIX: Final = "$JS.ACK"


@dataclass(frozen=True, slots=True)
class DurableHandler:
    """What the grants need of one durable handler."""

    name: str
    pattern: str
    broadcast: bool
    dedupe: bool = False


def make_streams(stream: str) -> list[str]:
    """Find, make and bring up to date a stream aegis makes (`ensure_*_stream`)."""
    return [
        f"{JS_API}.INFO",
        f"{JS_API}.STREAM.NAMES",
        f"{JS_API}.STREAM.INFO.{stream}",
        f"{JS_API}.STREAM.CREATE.{stream}",
        f"{JS_API}.STREAM.UPDATE.{stream}",
    ]


def durable_publishing(patterns: Iterable[str], subjects: Subjects, buckets: Buckets) -> list[str]:
    """Publish durably on `patterns` (those naming a domain): make or find its stream."""
    grants: list[str] = []
    for pattern in patterns:
        domain = event_domain(pattern)
        if DOMAIN_RE.fullmatch(domain):
            grants += make_streams(buckets.event_stream(domain))
    return grants


def durable_handling(
    service: str, handlers: Iterable[DurableHandler], subjects: Subjects, buckets: Buckets
) -> tuple[list[str], list[str]]:
    """Publish and subscribe grants for `service`'s durable handlers."""
    handlers = list(handlers)
    if not handlers:
        return [], []
    dead = buckets.dead_letters
    publish = [*make_streams(dead), subjects.dead_letter(service, "*")]
    for handler in handlers:
        stream = buckets.event_stream(event_domain(handler.pattern))
        consumer = "*" if handler.broadcast else consumer_name(service, handler.name)
        publish += [
            *make_streams(stream),
            f"{JS_API}.CONSUMER.INFO.{stream}.{consumer}",
            f"{JS_API}.CONSUMER.CREATE.{stream}.{consumer}",
            f"{JS_API}.CONSUMER.CREATE.{stream}.{consumer}.>",
            f"{JS_API}.CONSUMER.DELETE.{stream}.{consumer}",
            f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{consumer}",
            f"{ACK_PREFIX}.{stream}.{consumer}.>",
        ]
        if handler.dedupe:
            publish += _use_dedupe_bucket(buckets)
    subscribe = [f"{subjects.event_replay(service)} {service}"]
    return list(dict.fromkeys(publish)), subscribe


def _use_dedupe_bucket(buckets: Buckets) -> list[str]:
    stream = f"KV_{dedupe_bucket_spec(buckets).name}"
    return [
        f"{JS_API}.INFO",
        f"{JS_API}.STREAM.INFO.{stream}",
        f"{JS_API}.STREAM.CREATE.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}.>",
        f"{JS_API}.STREAM.MSG.GET.{stream}",
        f"$KV.{buckets.event_dedupe}.>",
    ]


def events_admin(subjects: Subjects, buckets: Buckets) -> list[str]:
    """`aegis events`: list streams and consumers, reset consumers, read, replay and drop
    dead letters."""
    dead = buckets.dead_letters
    return [
        f"{JS_API}.STREAM.LIST",
        f"{JS_API}.STREAM.INFO.*",
        f"{JS_API}.CONSUMER.LIST.*",
        f"{JS_API}.CONSUMER.RESET.*.*",
        f"{JS_API}.STREAM.MSG.GET.*",
        f"{JS_API}.STREAM.MSG.DELETE.{dead}",
        f"{JS_API}.DIRECT.GET.{dead}",
        subjects.event_replay("*"),
    ]
