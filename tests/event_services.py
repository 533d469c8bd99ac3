"""Services with durable event handlers, shared by the tests and tests/event_process.py."""

from __future__ import annotations

from typing import Any

import anyio
from pydantic import BaseModel

from aegis_actors import ServiceActor, current_event, event
from tests.probes import Journal


class Entry(BaseModel):
    n: int
    fail: bool = False
    """Raise in the handler (until the test clears the journal's `fail` flag)."""
    later: bool = False
    """Ask for a redelivery once."""


class Ledger(ServiceActor):
    """One handler shared by the instances: records each entry in the test's journal.

    With `settings["hang"]`, the handler announces the event on `test.hanging`
    and never returns (the instance the tests SIGKILL while it handles one).
    """

    service_name = "ledger"

    @property
    def journal(self) -> Journal:
        journal: Journal = self.settings["journal"]
        return journal

    @event("events.ledger.*", durable=True, ack_wait=1, backoff=(0.05, 0.1), max_deliver=3)
    async def on_entry(self, entry: Entry) -> None:
        await self._handle(entry)

    async def _handle(self, entry: Entry) -> None:
        context = current_event()
        assert context is not None
        if self.settings.get("hang"):
            subject = self.actor_instance.subjects.own("test.hanging")
            await self.nats.publish(subject, (context.event_id or "").encode())
            await anyio.sleep_forever()
        journal = self.journal
        if entry.later and context.delivered == 1:
            journal.record("later", entry.n)
            context.retry_later(0.05)
            return
        if entry.fail and getattr(journal, "fail", True):
            journal.record("failed", entry.n, context.delivered)
            raise RuntimeError(f"entry {entry.n} is poison")
        journal.record(
            "entry",
            self.instance_id,
            entry.n,
            context.delivered,
            context.sequence,
            context.replayed,
        )


class IdempotentLedger(Ledger):
    """`Ledger` whose handler skips the events it finished (`dedupe`)."""

    @event(
        "events.ledger.*",
        durable=True,
        ack_wait=1,
        backoff=(0.05, 0.1),
        max_deliver=3,
        dedupe=60,
    )
    async def on_entry(self, entry: Entry) -> None:
        await self._handle(entry)


class Audit(ServiceActor):
    """A broadcast durable handler: every instance sees every entry, from the stream's start."""

    service_name = "audit"

    @property
    def journal(self) -> Journal:
        journal: Journal = self.settings["journal"]
        return journal

    @event("events.ledger.*", durable=True, broadcast=True, ack_wait=1)
    async def on_entry(self, entry: Entry) -> None:
        self.journal.record("audit", self.instance_id, entry.n)

    async def on_message(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash on request")
        return await super().on_message(message)


class Slow(ServiceActor):
    """Runs up to three entries at once; each waits for the test to open its gate."""

    service_name = "slow"

    @event("events.ledger.*", durable=True, max_concurrency=3, ack_wait=1)
    async def on_entry(self, entry: Entry) -> None:
        journal: Journal = self.settings["journal"]
        gates: dict[int, Any] = self.settings["gates"]
        journal.record("started", entry.n)
        await gates[entry.n].wait()
        journal.record("done", entry.n)
