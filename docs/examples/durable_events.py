"""Durable events: kept in their domain's stream, handled once an instance runs, stored once."""

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from pydantic import BaseModel

from aegis_actors import (
    ActorSystem,
    Client,
    ConnectionSettings,
    InstanceSettings,
    ServiceActor,
    current_event,
    event,
    start_instance,
)

# Where the handler reports, for this example's main() to print.
seen: MemoryObjectSendStream[str]


class Payment(BaseModel):
    id: str
    amount: int


class Ledger(ServiceActor):
    service_name = "ledger"
    version = "1.0.0"

    @event("events.payment.*", durable=True, max_deliver=5, backoff=0.1, dedupe=3600)
    async def on_payment(self, payment: Payment) -> None:
        event = current_event()
        assert event is not None
        if payment.amount > 1000 and event.delivered == 1:
            event.retry_later(0.1)  # not now: deliver it again in 0.1 s
            return
        await seen.send(f"{payment.id}: delivery {event.delivered}, sequence {event.sequence}")


async def main(url: str) -> None:
    global seen
    seen, received = anyio.create_memory_object_stream[str](10)
    with seen, received:
        async with Client(url=url) as client:
            # No ledger instance runs yet: the stream keeps the events.
            for payment in (Payment(id="p-1", amount=10), Payment(id="p-2", amount=5000)):
                await client.publish_event(
                    "events.payment.received", payment, durable=True, event_id=payment.id
                )
            again = await client.publish_event(
                "events.payment.received", {"id": "p-1", "amount": 10}, event_id="p-1"
            )
            print(f"p-1 published again: duplicate={again.duplicate}, sequence {again.sequence}")
            async with ActorSystem() as system:
                await start_instance(
                    system, Ledger, InstanceSettings(nats=ConnectionSettings(url=url))
                )
                with anyio.fail_after(10):
                    for _ in range(2):
                        print(await received.receive())


# Output:
# p-1 published again: duplicate=True, sequence 1
# p-1: delivery 1, sequence 1
# p-2: delivery 2, sequence 2
