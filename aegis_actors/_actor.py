"""`Actor`: private state, a bounded mailbox, one message at a time.

Subclass it and override `on_receive`; what `on_receive` returns answers an
`ask`. The runtime sets the `actor_*` attributes before `on_start`, so they
are not available in `__init__`.

Example:

    class Counter(Actor):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        async def on_receive(self, message: Any) -> Any:
            if message == "increment":
                self.count += 1
            return self.count

    async with ActorSystem() as system:
        counter = await system.spawn(Counter, name="counter")
        await counter.tell("increment")
        assert await counter.ask("get") == 1
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio
import structlog
from anyio import EndOfStream, WouldBlock
from anyio.abc import TaskStatus
from structlog.contextvars import bind_contextvars

from aegis_actors._errors import ActorStartError
from aegis_actors._mailbox import WAKE
from aegis_actors._ref import ActorRef, StopRequest

log = structlog.get_logger("aegis_actors.actor")


class SystemHandle(Protocol):
    """What an actor may use of the `ActorSystem` it runs in (its `actor_system`).

    A protocol, so that the actor core does not import the system built on it.
    """

    name: str

    async def spawn(
        self,
        factory: ActorFactory,
        *,
        name: str,
        restart: Any = ...,
        shutdown: float | None = ...,
        capacity: int = ...,
    ) -> ActorRef: ...

    async def stop(self, ref: ActorRef) -> None: ...

    def dead_letter(self, path: str, message: Any) -> None: ...


class Actor:
    """Base class for actors. Override the `on_*` hooks you need."""

    #: This actor's ref (set by the runtime before `on_start`).
    actor_ref: ActorRef
    #: The system the actor runs in (set by the runtime before `on_start`).
    actor_system: SystemHandle
    #: A structlog logger bound with the actor's path.
    actor_log: Any

    @property
    def actor_path(self) -> str:
        """The actor's path, e.g. `/instance/order-service-1a2b3c4d/heartbeat`."""
        return self.actor_ref.path

    async def on_start(self) -> None:
        """Called before the first message; raising here fails the start."""

    async def on_restart(self, reason: BaseException | None) -> None:
        """Called on a fresh instance that replaces a stopped one, before `on_start`.

        `reason` is what stopped the previous incarnation (or a sibling, under
        `one_for_all` / `rest_for_one`); None for a normal stop.
        """

    async def on_receive(self, message: Any) -> Any:
        """Handle one message; the return value answers an `ask`.

        An exception escaping here crashes the actor; its supervisor decides
        what happens next. A `Terminated` arrives here for every watched actor
        that stops for good.
        """
        self.actor_log.warning("unhandled message", message_type=type(message).__name__)
        return None

    async def on_stop(self) -> None:
        """Called when the actor stops, normally or after a crash, to release resources."""

    def actor_stop(self) -> None:
        """Stop this actor after the current message (a normal exit)."""
        self.actor_ref.stop()

    def actor_timer(self, delay: float, message: Any) -> asyncio.TimerHandle:
        """Send `message` to this actor after `delay` seconds (ahead of queued messages).

        Timers belong to the incarnation: they are cancelled when it stops.
        """
        loop = asyncio.get_running_loop()
        handle = loop.call_later(delay, self.actor_ref.send_system, message)
        timers: list[asyncio.TimerHandle] = self.__dict__.setdefault("_actor_timers", [])
        now = loop.time()
        timers[:] = [t for t in timers if not t.cancelled() and t.when() > now]
        timers.append(handle)
        return handle

    def _actor_cancel_timers(self) -> None:
        for handle in self.__dict__.pop("_actor_timers", ()):
            handle.cancel()

    async def _actor_start(self) -> None:
        """Runtime hook around `on_start`; machinery subclasses extend it, users do not."""
        await self.on_start()

    async def _actor_stop(self) -> None:
        """Runtime hook around `on_stop`; machinery subclasses extend it, users do not."""
        await self.on_stop()

    def actor_watch(self, ref: ActorRef) -> None:
        """Receive a `Terminated` message when `ref` stops for good."""
        ref.watch(self.actor_ref)

    def actor_unwatch(self, ref: ActorRef) -> None:
        """Stop watching `ref`."""
        ref.unwatch(self.actor_ref)


ActorFactory = Callable[[], Actor]


class Failure:
    """Return this from `on_receive` to fail an `ask` without crashing the actor.

    The asker's `ask` raises `error`; the actor keeps its state and goes on.
    (An exception *raised* from `on_receive` crashes the actor instead.)
    """

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"Failure({self.error!r})"


class Incarnation:
    """One run of an actor instance: what the parent needs to stop or await it."""

    __slots__ = ("actor", "done", "reason", "scope")

    def __init__(self, actor: Actor | None) -> None:
        self.actor = actor
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()
        self.reason: BaseException | None = None


async def run_incarnation(
    actor: Actor,
    ref: ActorRef,
    system: SystemHandle,
    restart_reason: BaseException | None,
    restarted: bool,
    on_exit: Callable[[Incarnation], None],
    *,
    task_status: TaskStatus[Incarnation] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Start `actor` on `ref` and serve its mailbox until it stops.

    Reports "started" only once `on_start` has returned (started = ready).
    A failing `on_start` raises `ActorStartError` to the starter; after that,
    nothing escapes: the outcome goes to `on_exit`.
    """
    if "actor_ref" in vars(actor):
        raise ActorStartError(
            ref.path,
            TypeError("this actor instance already ran; a factory must make a new instance"),
        )
    ref.generation += 1
    generation = ref.generation
    actor.actor_ref = ref
    actor.actor_system = system
    actor.actor_log = log.bind(actor=ref.path)
    incarnation = Incarnation(actor)
    # Every log line from this task and the tasks it starts carries the path.
    bind_contextvars(actor=ref.path)
    try:
        with incarnation.scope:
            try:
                if restarted:
                    await actor.on_restart(restart_reason)
                await actor._actor_start()
            except Exception as exc:
                raise ActorStartError(ref.path, exc) from exc
            task_status.started(incarnation)
            try:
                await _serve(actor.on_receive, ref, generation)
            except Exception as exc:
                incarnation.reason = exc
            finally:
                await _call_on_stop(actor, ref)
    finally:
        incarnation.done.set()
    on_exit(incarnation)


async def _call_on_stop(actor: Actor, ref: ActorRef) -> None:
    actor._actor_cancel_timers()
    try:
        await actor._actor_stop()
    except Exception:
        log.exception("on_stop failed", actor=ref.path)


async def _serve(
    on_receive: Callable[[Any], Awaitable[Any]],
    ref: ActorRef,
    generation: int,
    until: anyio.Event | None = None,
) -> None:
    """The message loop: system lane first, then one envelope at a time.

    Without `until` it runs until a `StopRequest` for `generation`; with it,
    until `until` is set and the mailbox is empty (draining on stop).
    """
    mailbox = ref.mailbox
    system_lane = mailbox.system
    get_nowait = mailbox.get_nowait
    while True:
        while system_lane:
            message, reply = system_lane.popleft()
            if isinstance(message, StopRequest):
                if until is None and message.generation == generation:
                    return
                continue
            if reply is None:
                await on_receive(message)
            elif not reply.done():
                await _answer(on_receive, message, reply)
        try:
            message, reply = get_nowait()
        except WouldBlock:
            if until is not None and until.is_set():
                return
            try:
                message, reply = await mailbox.get()
            except EndOfStream:
                return
        except EndOfStream:
            return
        if reply is None:
            if message is not WAKE:
                await on_receive(message)
        elif not reply.done():  # a done future: the asker gave up (timeout, cancellation)
            await _answer(on_receive, message, reply)


async def serve_until(
    ref: ActorRef, on_receive: Callable[[Any], Awaitable[Any]], until: anyio.Event
) -> None:
    """Serve what is queued on `ref` (and keeps arriving) until `until` is set and nothing is left.

    For actors that drain their mailbox while stopping; call `ref.mailbox.wake()`
    after setting `until` so an idle loop notices.
    """
    await _serve(on_receive, ref, -1, until)


async def _answer(
    on_receive: Callable[[Any], Awaitable[Any]], message: Any, reply: asyncio.Future[Any]
) -> None:
    try:
        result = await on_receive(message)
    except Exception as exc:
        if not reply.done():
            reply.set_exception(exc)
        raise
    if reply.done():
        return
    if type(result) is Failure:
        reply.set_exception(result.error)
    else:
        reply.set_result(result)
