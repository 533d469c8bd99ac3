"""The mailbox: a bounded queue of envelopes plus a lane for system messages.

User messages go through an anyio memory object stream of fixed capacity, so
a full mailbox makes senders wait (back pressure, never unbounded memory).
System messages (stop requests, `Terminated`, child exits) must never wait
behind user messages nor be refused for lack of room, so they go through a
separate lane that the actor drains first. Their number is bounded by the
number of watched actors and children, not by traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

import anyio
from anyio import BrokenResourceError, ClosedResourceError, EndOfStream, WouldBlock
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

#: A message and, for an `ask`, the future that receives the answer.
Envelope = tuple[Any, "asyncio.Future[Any] | None"]

DEFAULT_CAPACITY: Final = 1000


class _Wake:
    """Placed in the user queue to wake an idle actor when a system message arrives."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "WAKE"


WAKE: Final = _Wake()


class MailboxClosed(Exception):
    """Raised by `Mailbox.put*` once the mailbox is closed for good."""


@dataclass(frozen=True, slots=True)
class MailboxStatistics:
    """A point-in-time view of a mailbox."""

    capacity: int
    queued: int
    waiting_senders: int
    system_queued: int
    closed: bool


class Mailbox:
    """Bounded envelope queue with a priority lane for system messages."""

    __slots__ = ("_receive", "_send", "capacity", "closed", "system")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"mailbox capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._send: MemoryObjectSendStream[Envelope]
        self._receive: MemoryObjectReceiveStream[Envelope]
        self._send, self._receive = anyio.create_memory_object_stream[Envelope](capacity)
        self.system: deque[Envelope] = deque()
        self.closed = False

    def put_nowait(self, envelope: Envelope) -> None:
        """Queue an envelope, raising `WouldBlock` when full or `MailboxClosed`."""
        try:
            self._send.send_nowait(envelope)
        except (ClosedResourceError, BrokenResourceError):
            raise MailboxClosed from None

    async def put(self, envelope: Envelope) -> None:
        """Queue an envelope, waiting while the mailbox is full (back pressure)."""
        try:
            self._send.send_nowait(envelope)
        except WouldBlock:
            try:
                await self._send.send(envelope)
            except (ClosedResourceError, BrokenResourceError):
                raise MailboxClosed from None
        except (ClosedResourceError, BrokenResourceError):
            raise MailboxClosed from None

    def get_nowait(self) -> Envelope:
        """Take the next envelope; `WouldBlock` if none, `EndOfStream` once closed."""
        return self._receive.receive_nowait()

    async def get(self) -> Envelope:
        """Take the next envelope, waiting for one; `EndOfStream` once closed."""
        try:
            return self._receive.receive_nowait()
        except WouldBlock:
            return await self._receive.receive()

    def put_system(self, envelope: Envelope) -> bool:
        """Queue a system envelope ahead of user messages; False if closed."""
        if self.closed:
            return False
        self.system.append(envelope)
        # An idle actor sleeps in `get()`; a full queue means it is not idle
        # and will look at the system lane before its next message.
        self.wake()
        return True

    def wake(self) -> None:
        """Wake an actor idle in `get()` (no message is delivered)."""
        with contextlib.suppress(WouldBlock, ClosedResourceError, BrokenResourceError):
            self._send.send_nowait((WAKE, None))

    def close(self) -> list[Envelope]:
        """Close for good and return what was still queued (without wake tokens).

        Senders waiting on a full mailbox are released with `MailboxClosed`.
        """
        self.closed = True
        left: list[Envelope] = list(self.system)
        self._send.close()
        while True:
            try:
                envelope = self._receive.receive_nowait()
            except (WouldBlock, EndOfStream):
                break
            if envelope[0] is not WAKE:
                left.append(envelope)
        self._receive.close()
        self.system.clear()
        return left

    def statistics(self) -> MailboxStatistics:
        stats = self._send.statistics()
        return MailboxStatistics(
            capacity=self.capacity,
            queued=stats.current_buffer_used,
            waiting_senders=stats.tasks_waiting_send,
            system_queued=len(self.system),
            closed=self.closed,
        )
