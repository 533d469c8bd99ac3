"""`$SRV.STATS` and `$SRV.INFO` of many instances with one request each (scatter-gather).

And `ProbeActor`, which takes the fleet's samples and checks write access.

Every instance answers the NATS service protocol's control subjects, so one
request on `$SRV.STATS` (or `$SRV.STATS.{service}`) with a reply inbox
brings one answer per instance. Collection stops when as many answers as the
registry has instances came, or at the timeout: one publish per sample, not
one request per instance (1,000 instances, one message out).

`$SRV.*` subjects are not namespaced: answers of other fleets on the same
server are dropped by the caller, which knows its instance ids.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import anyio
from pydantic_core import from_json

from aegis_actors._actor import Actor
from aegis_actors._errors import TransportError
from aegis_actors._ref import ActorRef
from aegis_actors._subjects import ControlVerb, control
from aegis_actors._transport import Msg, NatsClient, transport_errors
from aegis_actors._web.access import WriteAccess, ask_write_access
from aegis_actors._web.context import WebContext

#: Seconds to wait for the answers of one scatter-gather (instances answer from a
#: subscription callback, not their mailbox: a busy one still answers in ms).
GATHER_TIMEOUT: Final = 0.5


async def gather(
    client: NatsClient,
    subject: str,
    *,
    expected: int | None = None,
    timeout: float = GATHER_TIMEOUT,
) -> list[dict[str, Any]]:
    """Publish one request on `subject`; the JSON objects answered until `expected` or `timeout`."""
    answers: list[dict[str, Any]] = []
    enough = anyio.Event()

    async def on_answer(msg: Msg) -> None:
        try:
            answer = from_json(msg.data)
        except ValueError:
            return  # not a micro service's answer: nothing to show
        if isinstance(answer, dict):
            answers.append(answer)
            if expected is not None and len(answers) >= expected:
                enough.set()

    inbox = client.new_inbox()
    sub = await client.subscribe(inbox, cb=on_answer)
    try:
        await client.publish(subject, b"", reply=inbox)
        with anyio.move_on_after(timeout):
            await enough.wait()
    finally:
        await sub.unsubscribe()
    return list(answers)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def endpoint_figures(endpoint: dict[str, Any]) -> dict[str, Any]:
    """One endpoint of a STATS answer, in the page's camelCase, numbers checked."""
    return {
        "name": str(endpoint.get("name", "")),
        "subject": str(endpoint.get("subject", "")),
        "requests": _count(endpoint.get("num_requests")),
        "errors": _count(endpoint.get("num_errors")),
        "processingTime": _count(endpoint.get("processing_time")),
        "averageProcessingTime": _count(endpoint.get("average_processing_time")),
        "lastError": str(endpoint.get("last_error") or ""),
    }


def endpoints_of(answer: dict[str, Any]) -> list[dict[str, Any]]:
    endpoints = answer.get("endpoints")
    if not isinstance(endpoints, list):
        return []
    return [endpoint_figures(e) for e in endpoints if isinstance(e, dict)]


def totals(answer: dict[str, Any]) -> list[int]:
    """`[requests, errors, processing ns]` of every endpoint of one STATS answer."""
    figures = endpoints_of(answer)
    return [
        sum(e["requests"] for e in figures),
        sum(e["errors"] for e in figures),
        sum(e["processingTime"] for e in figures),
    ]


async def instance_stats(
    client: NatsClient, service: str, instance_id: str | None, expected: int | None
) -> list[dict[str, Any]]:
    """STATS (and, for one instance, INFO) of a service's instances, per instance."""
    subject = control(ControlVerb.STATS, service, instance_id)
    answers = await gather(client, subject, expected=expected)
    described: dict[str, dict[str, Any]] = {}
    if instance_id is not None:
        for info in await gather(
            client, control(ControlVerb.INFO, service, instance_id), expected=1
        ):
            described[str(info.get("id"))] = info
    found: list[dict[str, Any]] = []
    for answer in answers:
        answer_id = str(answer.get("id", ""))
        if answer.get("name") != service or (instance_id is not None and answer_id != instance_id):
            continue
        info = described.get(answer_id, {})
        found.append(
            {
                "id": answer_id,
                "version": str(answer.get("version", "")),
                "started": str(answer.get("started", "")),
                "description": str(info.get("description", "")),
                "metadata": info.get("metadata") if isinstance(info.get("metadata"), dict) else {},
                "endpoints": endpoints_of(answer),
            }
        )
    return sorted(found, key=lambda item: item["id"])


# -- the probe actor -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SampleFleet:
    """Take one sample of every instance's totals; told back as `FleetSampled` to `reply_to`."""

    expected: int
    reply_to: ActorRef


@dataclass(frozen=True, slots=True)
class FleetSampled:
    at: float
    """Unix time of the sample."""
    totals: dict[str, list[int]]
    """Instance id: `[requests, errors, processing ns]`."""
    failed: bool = False
    """No sample could be taken (NATS unreachable): keep the last figures."""


@dataclass(frozen=True, slots=True)
class CheckAccess:
    """Ask the server what the connection may write; told back as `AccessChecked`."""

    reply_to: ActorRef


@dataclass(frozen=True, slots=True)
class AccessChecked:
    access: WriteAccess


class ProbeActor(Actor):
    """Asks the fleet what takes a while (samples, write access), so the view never waits."""

    def __init__(self, ctx: WebContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.client = ctx.connection

    async def on_start(self) -> None:
        self.ctx.probe = self.actor_ref

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, SampleFleet):
            subject = control(ControlVerb.STATS)
            try:
                with transport_errors(subject):
                    answers = await gather(self.client, subject, expected=max(1, message.expected))
            except TransportError as exc:
                self.actor_log.debug("fleet sample failed", error=repr(exc))
                await message.reply_to.tell(FleetSampled(time.time(), {}, failed=True))
                return None
            found = {str(a.get("id", "")): totals(a) for a in answers}
            await message.reply_to.tell(FleetSampled(time.time(), found))
        elif isinstance(message, CheckAccess):
            access = await ask_write_access(self.client, self.ctx.subjects)
            await message.reply_to.tell(AccessChecked(access))
        else:
            return await super().on_receive(message)
        return None
