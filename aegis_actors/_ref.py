"""`ActorRef`: the only way to talk to an actor.

A ref names one actor for its whole life. When a supervisor restarts the
actor, the ref and its mailbox stay the same, so queued messages are kept and
holders of the ref never notice; the ref dies only when the actor stops for
good (it is not restarted), and then every queued `ask` fails at once with
`ActorDeadError` and queued `tell`s are counted as dead letters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import anyio
from anyio import WouldBlock

from aegis_actors._errors import ActorDeadError, AskTimeoutError, MailboxFullError
from aegis_actors._mailbox import Mailbox, MailboxClosed, MailboxStatistics

DEFAULT_ASK_TIMEOUT: Final = 5.0

#: Called with (path, message) for every message that could not be delivered.
DeadLetterSink = Callable[[str, Any], None]


@dataclass(frozen=True, slots=True)
class Terminated:
    """Sent to every watcher of an actor once that actor has stopped for good.

    `reason` is None for a normal stop and the exception for a crash.
    """

    ref: ActorRef
    reason: BaseException | None


@dataclass(frozen=True, slots=True)
class StopRequest:
    """System message: end the incarnation `generation` after its current message."""

    generation: int


def _expire(future: asyncio.Future[Any], path: str, timeout: float) -> None:
    if not future.done():
        future.set_exception(AskTimeoutError(path, timeout))


class ActorRef:
    """Handle to an actor: `tell`, `ask`, `stop`, `watch`.

    Refs are created by the runtime (`ActorSystem.spawn`, a supervisor);
    never construct one yourself.
    """

    __slots__ = (
        "_dead_letter",
        "_mailbox",
        "_reason",
        "_stopped",
        "_watchers",
        "generation",
        "path",
    )

    def __init__(self, path: str, mailbox: Mailbox, dead_letter: DeadLetterSink) -> None:
        self.path = path
        self._mailbox = mailbox
        self._dead_letter = dead_letter
        self._watchers: list[ActorRef] = []
        self._stopped = anyio.Event()
        self._reason: BaseException | None = None
        #: Incremented by the runtime each time a new incarnation starts.
        self.generation = 0

    def __repr__(self) -> str:
        state = "alive" if self.is_alive else "dead"
        return f"<ActorRef {self.path} {state}>"

    @property
    def name(self) -> str:
        """The last segment of the path."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def is_alive(self) -> bool:
        """False once the actor has stopped for good."""
        return not self._mailbox.closed

    @property
    def stop_reason(self) -> BaseException | None:
        """Why the actor stopped for good (None while alive or after a normal stop)."""
        return self._reason

    async def tell(self, message: Any) -> None:
        """Send without waiting for an answer; waits only while the mailbox is full.

        A message to a dead actor is counted as a dead letter, not raised.
        """
        try:
            self._mailbox.put_nowait((message, None))
        except WouldBlock:
            try:
                await self._mailbox.put((message, None))
            except MailboxClosed:
                self._dead_letter(self.path, message)
        except MailboxClosed:
            self._dead_letter(self.path, message)

    def tell_nowait(self, message: Any) -> None:
        """Send without waiting at all.

        Raises:
            MailboxFullError: the mailbox is full (the message is not queued).
        """
        try:
            self._mailbox.put_nowait((message, None))
        except WouldBlock:
            raise MailboxFullError(self.path, self._mailbox.capacity) from None
        except MailboxClosed:
            self._dead_letter(self.path, message)

    async def ask(self, message: Any, *, timeout: float | None = DEFAULT_ASK_TIMEOUT) -> Any:
        """Send and wait for the actor's answer (what its `on_receive` returned).

        The timeout covers waiting for room in the mailbox as well as the answer.
        If the actor raises while handling the message, that exception is raised
        here (and the actor crashes, as under OTP).

        Raises:
            ActorDeadError: the actor is dead, or stopped for good before answering.
            AskTimeoutError: no answer within `timeout` seconds (a `TimeoutError`).
        """
        loop = asyncio.get_running_loop()
        limit = timeout
        future: asyncio.Future[Any] = loop.create_future()
        envelope = (message, future)
        try:
            self._mailbox.put_nowait(envelope)
        except MailboxClosed:
            raise ActorDeadError(self.path) from None
        except WouldBlock:
            try:
                if timeout is None:
                    await self._mailbox.put(envelope)
                else:
                    deadline = loop.time() + timeout
                    with anyio.move_on_after(timeout) as scope:
                        await self._mailbox.put(envelope)
                    if scope.cancelled_caught:
                        # The envelope may have gone in just as time ran out;
                        # a done future makes the actor skip it.
                        future.cancel()
                        raise AskTimeoutError(self.path, timeout)
                    timeout = max(0.0, deadline - loop.time())
            except MailboxClosed:
                raise ActorDeadError(self.path) from None
        if timeout is None:
            return await future
        handle = loop.call_later(timeout, _expire, future, self.path, limit or timeout)
        try:
            return await future
        finally:
            handle.cancel()

    async def ask_priority(
        self, message: Any, *, timeout: float | None = DEFAULT_ASK_TIMEOUT
    ) -> Any:
        """Like `ask`, but ahead of every queued message (for health checks, supervision).

        It still waits for the message being handled; it never waits for room.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._mailbox.put_system((message, future)):
            raise ActorDeadError(self.path)
        if timeout is None:
            return await future
        handle = loop.call_later(timeout, _expire, future, self.path, timeout)
        try:
            return await future
        finally:
            handle.cancel()

    def stop(self) -> None:
        """Ask the actor to stop after the message it is handling.

        A supervised actor's supervisor then applies the child's restart type
        (a permanent child comes back); to remove a child for good, use the
        supervisor's `TerminateChild`.
        """
        self._mailbox.put_system((StopRequest(self.generation), None))

    async def wait_stopped(self) -> BaseException | None:
        """Wait until the actor has stopped for good; return the reason (None = normal)."""
        await self._stopped.wait()
        return self._reason

    def watch(self, watcher: ActorRef) -> None:
        """Send `watcher` a `Terminated` when this actor stops for good (at once if dead)."""
        if self._mailbox.closed:
            watcher.send_system(Terminated(self, self._reason))
        elif watcher not in self._watchers:
            self._watchers.append(watcher)

    def unwatch(self, watcher: ActorRef) -> None:
        """Stop sending `Terminated` to `watcher`."""
        if watcher in self._watchers:
            self._watchers.remove(watcher)

    @property
    def mailbox(self) -> Mailbox:
        """The mailbox itself (runtime side: draining actors read it directly)."""
        return self._mailbox

    def mailbox_statistics(self) -> MailboxStatistics:
        """Queued messages and waiting senders, as an immutable snapshot."""
        return self._mailbox.statistics()

    # -- runtime side -------------------------------------------------------

    def send_system(self, message: Any) -> None:
        """Queue a system message; it never waits and is never refused for room."""
        if not self._mailbox.put_system((message, None)):
            self._dead_letter(self.path, message)

    def terminate(self, reason: BaseException | None) -> None:
        """Mark the actor dead for good: fail queued asks, notify watchers."""
        if self._mailbox.closed:
            return
        self._reason = reason
        for message, future in self._mailbox.close():
            if isinstance(message, StopRequest):
                continue
            if future is None:
                self._dead_letter(self.path, message)
            elif not future.done():
                future.set_exception(ActorDeadError(self.path))
        self._stopped.set()
        watchers, self._watchers = self._watchers, []
        for watcher in watchers:
            if watcher.is_alive:  # a watcher that stopped first needs no news
                watcher.send_system(Terminated(self, reason))
