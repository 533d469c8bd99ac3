"""`Supervisor`: Erlang/OTP supervision for actors.

A supervisor starts its children in order (each one ready before the next),
restarts them by its strategy and their restart types, and stops them in
reverse order, each within its shutdown timeout, after which it is cancelled.
When children need more than `max_restarts` restarts within `within_seconds`,
it stops them all and fails with `RestartIntensityError`, so its own parent
decides (escalation). Between restarts it waits an exponential backoff with
jitter, so a child that crashes at once on start does not spin.

Example:

    def make_tree() -> Supervisor:
        return Supervisor(
            [
                ChildSpec("db", Database),
                ChildSpec("api", Api, restart=Restart.TRANSIENT, shutdown=10.0),
            ],
            strategy=Strategy.REST_FOR_ONE,
            max_restarts=3,
            within_seconds=5.0,
        )
    async with ActorSystem() as system:
        # The factory makes a fresh supervisor at every (re)start.
        ref = await system.spawn(make_tree, name="app")
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup

from aegis_actors._actor import Actor, Failure, Incarnation, run_incarnation
from aegis_actors._backoff import Backoff, add_restart
from aegis_actors._child_spec import (
    AutoShutdown,
    ChildInfo,
    ChildSpec,
    Restart,
    StartChild,
    Strategy,
    TerminateChild,
    WhichChildren,
    child_path,
    validate_specs,
)
from aegis_actors._errors import ActorStartError, ChildSpecError, RestartIntensityError
from aegis_actors._mailbox import Mailbox
from aegis_actors._ref import ActorRef
from aegis_actors._telemetry import tracked

# -- internal -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ChildExited:
    child_id: str
    incarnation: Incarnation


@dataclass(frozen=True, slots=True)
class _RestartDue:
    token: object
    child_ids: tuple[str, ...]
    reason: BaseException | None


@dataclass(eq=False, slots=True)
class _Child:
    spec: ChildSpec
    ref: ActorRef
    incarnation: Incarnation | None = None
    restart_count: int = 0
    pending: object | None = None


def _should_restart(restart: Restart, reason: BaseException | None) -> bool:
    if restart is Restart.PERMANENT:
        return True
    if restart is Restart.TRANSIENT:
        return reason is not None
    return False


@dataclass(slots=True)
class Clock:
    """Where a supervisor reads time and randomness; tests pass a fake one."""

    now: Callable[[], float] = time.monotonic
    rand: Callable[[], float] = random.random
    sleep: Callable[[float], Any] = field(default=anyio.sleep)


class Supervisor(Actor):
    """Starts, watches and restarts child actors with OTP semantics."""

    def __init__(
        self,
        children: Sequence[ChildSpec] = (),
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = 3,
        within_seconds: float = 5.0,
        backoff: Backoff | None = None,
        auto_shutdown: AutoShutdown = AutoShutdown.NEVER,
        clock: Clock | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(strategy, Strategy):
            raise ChildSpecError("supervisor", [f"unknown strategy {strategy!r}"])
        if max_restarts < 0 or within_seconds <= 0:
            raise ChildSpecError(
                "supervisor",
                [
                    f"need max_restarts >= 0 and within_seconds > 0, got "
                    f"{max_restarts} and {within_seconds}"
                ],
            )
        validate_specs("supervisor", children)
        if auto_shutdown is AutoShutdown.NEVER and any(c.significant for c in children):
            raise ChildSpecError(
                "supervisor", ["significant children need auto_shutdown other than 'never'"]
            )
        self.strategy = strategy
        self.auto_shutdown = auto_shutdown
        self.max_restarts = max_restarts
        self.within_seconds = within_seconds
        self.backoff = backoff if backoff is not None else Backoff()
        self._clock = clock or Clock()
        self._specs = list(children)
        self._children: dict[str, _Child] = {}
        self._restarts: tuple[float, ...] = ()
        self._stack = AsyncExitStack()
        tracked.SUPERVISORS.add(self)
        self._tg: TaskGroup | None = None

    # -- lifecycle ------------------------------------------------------------

    async def on_start(self) -> None:
        self._tg = await self._stack.enter_async_context(anyio.create_task_group())
        try:
            for spec in self._specs:
                child = self._add(spec)
                await self._start(child, restarted=False, reason=None)
        except BaseException:
            await self._stop_all()
            await self._close()
            raise

    async def on_stop(self) -> None:
        try:
            await self._stop_all()
        finally:
            await self._close()

    async def _close(self) -> None:
        for child in self._children.values():
            child.ref.terminate(None)
        self._children.clear()
        if self._tg is not None:
            # Pending delayed restarts are the only tasks left; drop them.
            self._tg.cancel_scope.cancel()
        await self._stack.aclose()

    # -- messages ---------------------------------------------------------------

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, _ChildExited):
            await self._child_exited(message)
        elif isinstance(message, _RestartDue):
            await self._restart(message.token, message.child_ids, message.reason)
        elif isinstance(message, StartChild):
            return await self._start_new(message.spec)
        elif isinstance(message, TerminateChild):
            child = self._children.get(message.id)
            if child is None:
                return False
            await self._stop(child)
            self._forget(child, None)
            return True
        elif isinstance(message, WhichChildren):
            return tuple(
                ChildInfo(
                    c.spec.id, c.ref, c.incarnation is not None, c.restart_count, c.spec.restart
                )
                for c in self._children.values()
            )
        else:
            return await super().on_receive(message)
        return None

    def restart_counts(self) -> dict[str, int]:
        """Restarts of each current child so far (for `/metrics`)."""
        return {c.spec.id: c.restart_count for c in self._children.values()}

    # -- machinery ----------------------------------------------------------------

    async def _start_new(self, spec: ChildSpec) -> ActorRef | Failure:
        try:
            validate_specs(self.actor_path, [*self._specs, spec])
        except ChildSpecError as exc:
            return Failure(exc)
        self._specs.append(spec)
        child = self._add(spec)
        try:
            await self._start(child, restarted=False, reason=None)
        except ActorStartError as exc:
            self._forget(child, exc)
            return Failure(exc)
        return child.ref

    def _add(self, spec: ChildSpec) -> _Child:
        ref = ActorRef(
            child_path(self.actor_path, spec.id),
            Mailbox(spec.capacity),
            self.actor_system.dead_letter,
        )
        child = _Child(spec, ref)
        self._children[spec.id] = child
        return child

    def _forget(self, child: _Child, reason: BaseException | None) -> None:
        self._children.pop(child.spec.id, None)
        self._specs = [s for s in self._specs if s.id != child.spec.id]
        child.ref.terminate(reason)

    async def _start(self, child: _Child, *, restarted: bool, reason: BaseException | None) -> None:
        assert self._tg is not None
        supervisor = self.actor_ref
        child_id = child.spec.id

        def on_exit(incarnation: Incarnation) -> None:
            # An exit we caused (we cleared `incarnation` first) needs no report.
            if child.incarnation is incarnation:
                supervisor.send_system(_ChildExited(child_id, incarnation))

        try:
            actor = child.spec.start()
            if not isinstance(actor, Actor):
                raise TypeError(f"start() returned {type(actor).__name__}, not an Actor")
        except Exception as exc:
            raise ActorStartError(child.ref.path, exc) from exc
        child.incarnation = await self._tg.start(
            run_incarnation, actor, child.ref, self.actor_system, reason, restarted, on_exit
        )

    async def _stop(self, child: _Child) -> None:
        """Stop the child's current incarnation: ask, wait `shutdown`, then cancel."""
        incarnation, child.incarnation = child.incarnation, None
        if incarnation is None:
            return
        child.pending = None
        child.ref.stop()
        with anyio.move_on_after(math.inf if child.spec.shutdown is None else child.spec.shutdown):
            await incarnation.done.wait()
        if not incarnation.done.is_set():
            self.actor_log.warning(
                "child did not stop in time, cancelling",
                child=child.spec.id,
                shutdown=child.spec.shutdown,
            )
            incarnation.scope.cancel()
            await incarnation.done.wait()

    async def _stop_all(self) -> None:
        for child in reversed(list(self._children.values())):
            await self._stop(child)

    async def _child_exited(self, message: _ChildExited) -> None:
        child = self._children.get(message.child_id)
        if child is None or child.incarnation is not message.incarnation:
            return  # we stopped it ourselves, or an older incarnation
        child.incarnation = None
        reason = message.incarnation.reason
        if not _should_restart(child.spec.restart, reason):
            self.actor_log.info(
                "child stopped",
                child=child.spec.id,
                reason=repr(reason),
                restart=child.spec.restart.value,
            )
            self._forget(child, reason)
            if child.spec.significant and self._significant_gone():
                self.actor_log.info("significant child stopped, shutting down", child=child.spec.id)
                self.actor_stop()
            return
        await self._schedule_restart(child, reason)

    def _significant_gone(self) -> bool:
        if self.auto_shutdown is AutoShutdown.ANY_SIGNIFICANT:
            return True
        if self.auto_shutdown is AutoShutdown.ALL_SIGNIFICANT:
            return not any(c.spec.significant for c in self._children.values())
        return False

    async def _schedule_restart(self, child: _Child, reason: BaseException | None) -> None:
        self._restarts, exceeded = add_restart(
            self._restarts, self._clock.now(), self.max_restarts, self.within_seconds
        )
        if exceeded:
            self.actor_log.error(
                "restart intensity exceeded, giving up",
                child=child.spec.id,
                reason=repr(reason),
                max_restarts=self.max_restarts,
                within_seconds=self.within_seconds,
            )
            raise RestartIntensityError(
                self.actor_path, child.spec.id, self.max_restarts, self.within_seconds
            ) from reason
        affected = self._affected(child)
        for other in reversed(affected):
            if other is not child:
                await self._stop(other)
        delay = self.backoff.delay(len(self._restarts) - 1, self._clock.rand)
        token = object()
        for c in affected:
            c.pending = token
        child.restart_count += 1
        self.actor_log.warning(
            "restarting child",
            supervisor=self.actor_path,
            child=child.spec.id,
            reason=repr(reason),
            restart_count=child.restart_count,
            strategy=self.strategy.value,
            restarting=[c.spec.id for c in affected],
            delay=round(delay, 4),
        )
        ids = tuple(c.spec.id for c in affected)
        if delay <= 0:
            await self._restart(token, ids, reason)
            return
        assert self._tg is not None
        self._tg.start_soon(self._restart_later, delay, _RestartDue(token, ids, reason))

    async def _restart_later(self, delay: float, due: _RestartDue) -> None:
        await self._clock.sleep(delay)
        self.actor_ref.send_system(due)

    def _affected(self, child: _Child) -> list[_Child]:
        children = list(self._children.values())
        if self.strategy is Strategy.ONE_FOR_ALL:
            return children
        if self.strategy is Strategy.REST_FOR_ONE:
            return children[children.index(child) :]
        return [child]

    async def _restart(
        self, token: object, child_ids: tuple[str, ...], reason: BaseException | None
    ) -> None:
        for child_id in child_ids:
            child = self._children.get(child_id)
            if child is None or child.pending is not token or child.incarnation is not None:
                continue
            child.pending = None
            try:
                await self._start(child, restarted=True, reason=reason)
            except ActorStartError as exc:
                # A failed restart is one more crash of that child; its handling
                # covers the children after it under every strategy.
                failed = Incarnation(None)
                failed.reason = exc
                child.incarnation = failed
                await self._child_exited(_ChildExited(child_id, failed))
                return
