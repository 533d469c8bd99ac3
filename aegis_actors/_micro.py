"""The NATS service protocol (ADR-32): answering `$SRV.PING|INFO|STATS` like `nats.micro`.

Standard NATS tooling (`nats micro ls`, `nats micro stats`) and nats-py's
micro client list every aegis instance, its endpoints, request and error
counts and processing times. Control requests are answered straight from the
subscription callback, not through the service's mailbox, so a busy instance
still answers its monitoring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from pydantic_core import to_json

from aegis_actors._dispatch import EndpointStats
from aegis_actors._models import utc_now
from aegis_actors._subjects import ControlVerb, control
from aegis_actors._transport import Msg, NatsClient, Subscription, close_subscriptions

PING_TYPE: Final = "io.nats.micro.v1.ping_response"
INFO_TYPE: Final = "io.nats.micro.v1.info_response"
STATS_TYPE: Final = "io.nats.micro.v1.stats_response"


@dataclass(eq=False)
class MicroResponder:
    """Answers the control subjects for one service instance."""

    name: str
    instance_id: str
    version: str
    description: str
    endpoints: list[EndpointStats]
    metadata: Callable[[], dict[str, str]] = dict
    started: datetime = field(default_factory=utc_now)
    _subs: list[Subscription] = field(default_factory=list)

    def identity(self, kind: str) -> dict[str, Any]:
        return {
            "type": kind,
            "name": self.name,
            "id": self.instance_id,
            "version": self.version,
            "metadata": self.metadata(),
        }

    def ping(self) -> dict[str, Any]:
        return self.identity(PING_TYPE)

    def info(self) -> dict[str, Any]:
        return {
            **self.identity(INFO_TYPE),
            "description": self.description,
            "endpoints": [e.info() for e in self.endpoints],
        }

    def stats(self) -> dict[str, Any]:
        started = self.started.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return {
            **self.identity(STATS_TYPE),
            "started": started,
            "endpoints": [e.stats() for e in self.endpoints],
        }

    async def start(self, client: NatsClient) -> None:
        answers = {
            ControlVerb.PING: self.ping,
            ControlVerb.INFO: self.info,
            ControlVerb.STATS: self.stats,
        }
        for verb, answer in answers.items():

            async def respond(msg: Msg, answer: Callable[[], dict[str, Any]] = answer) -> None:
                if msg.reply:
                    await client.publish(msg.reply, to_json(answer()))

            for subject in (
                control(verb),
                control(verb, self.name),
                control(verb, self.name, self.instance_id),
            ):
                self._subs.append(await client.subscribe(subject, cb=respond))

    async def stop(self) -> None:
        subs, self._subs = self._subs, []
        await close_subscriptions(subs)
