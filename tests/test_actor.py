"""The actor core: tell, ask, mailbox back pressure, lifecycle, watch, dead letters."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from aegis_actors import (
    Actor,
    ActorDeadError,
    ActorStartError,
    ActorSystem,
    AskTimeoutError,
    ChildSpec,
    Failure,
    MailboxFullError,
    Restart,
    RestartIntensityError,
    Supervisor,
    Terminated,
    WhichChildren,
)
from tests.probes import Crash, Journal, Probe, probe


class TestTellAndAsk:
    """Messages are handled one at a time, in order; ask returns what on_receive returned."""

    async def test_ask_returns_the_answer(self) -> None:
        journal = Journal()
        async with ActorSystem() as system:
            ref = await system.spawn(probe("a", journal), name="a")
            assert await ref.ask("hello") == ("echo", "hello")

    async def test_tells_are_handled_in_order_one_at_a_time(self) -> None:
        order: list[int] = []
        busy = False

        class Recorder(Actor):
            async def on_receive(self, message: Any) -> Any:
                nonlocal busy
                assert not busy, "two messages handled at once"
                busy = True
                await anyio.lowlevel.checkpoint()
                order.append(message)
                busy = False
                return len(order)

        async with ActorSystem() as system:
            ref = await system.spawn(Recorder, name="recorder", capacity=8)
            for i in range(100):
                await ref.tell(i)
            assert await ref.ask(100) == 101
        assert order == list(range(101))

    async def test_ask_past_its_timeout_raises_a_timeout_error(self) -> None:
        journal = Journal()
        gate = anyio.Event()
        async with ActorSystem() as system:
            ref = await system.spawn(probe("slow", journal), name="slow")
            with pytest.raises(AskTimeoutError) as info:
                await ref.ask(gate, timeout=0.05)
            assert isinstance(info.value, TimeoutError)
            assert info.value.path == "/slow"
            gate.set()
            assert await ref.ask("after") == ("echo", "after")

    async def test_an_ask_that_timed_out_while_queued_is_skipped(self) -> None:
        journal = Journal()
        gate = anyio.Event()
        async with ActorSystem() as system:
            ref = await system.spawn(probe("a", journal), name="a")
            await ref.tell(gate)
            with pytest.raises(AskTimeoutError):
                await ref.ask("late", timeout=0.01)
            gate.set()
            assert await ref.ask("next") == ("echo", "next")
        assert ("message", "a", "late") not in journal.events

    async def test_failure_answers_an_ask_with_an_error_and_keeps_the_state(self) -> None:
        class Account(Actor):
            def __init__(self) -> None:
                self.balance = 10

            async def on_receive(self, message: Any) -> Any:
                if message > self.balance:
                    return Failure(ValueError("insufficient funds"))
                self.balance -= message
                return self.balance

        async with ActorSystem() as system:
            ref = await system.spawn(Account, name="account", restart=Restart.PERMANENT)
            assert await ref.ask(3) == 7
            with pytest.raises(ValueError, match="insufficient"):
                await ref.ask(100)
            assert await ref.ask(1) == 6

    async def test_an_exception_in_an_ask_reaches_the_caller_and_crashes_the_actor(self) -> None:
        journal = Journal()
        async with ActorSystem() as system:
            ref = await system.spawn(probe("a", journal), name="a", restart=Restart.PERMANENT)
            await ref.ask("x")
            with pytest.raises(Crash):
                await ref.ask("crash")
            await journal.wait_count(("start", "a"), 2)
            assert await ref.ask("count") == 1, "a fresh instance after the crash"


class TestBackPressure:
    """A full mailbox makes tell wait; nothing is dropped and memory stays bounded."""

    async def test_tell_waits_while_the_mailbox_is_full(self) -> None:
        journal = Journal()
        gate = anyio.Event()
        async with ActorSystem() as system:
            ref = await system.spawn(probe("a", journal), name="a", capacity=2)
            await ref.tell(gate)  # taken by the actor, which now blocks
            await anyio.wait_all_tasks_blocked()
            await ref.tell("one")
            await ref.tell("two")
            assert ref.mailbox_statistics().queued == 2
            with pytest.raises(MailboxFullError):
                ref.tell_nowait("refused")

            done = anyio.Event()

            async def third() -> None:
                await ref.tell("three")
                done.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(third)
                await anyio.wait_all_tasks_blocked()
                assert not done.is_set(), "tell returned although the mailbox was full"
                assert ref.mailbox_statistics().waiting_senders == 1
                gate.set()
            await ref.ask("flush")
        messages = [e[2] for e in journal.of("message")]
        assert messages == ["one", "two", "three", "flush"]

    async def test_ask_timeout_covers_waiting_for_room(self) -> None:
        journal = Journal()
        gate = anyio.Event()
        async with ActorSystem() as system:
            ref = await system.spawn(probe("a", journal), name="a", capacity=1)
            await ref.tell(gate)
            await anyio.wait_all_tasks_blocked()
            await ref.tell("fills")
            with pytest.raises(AskTimeoutError):
                await ref.ask("no room", timeout=0.05)
            gate.set()
            assert await ref.ask("ok") == ("echo", "ok")
        assert ("message", "a", "no room") not in journal.events


class TestDeadActors:
    """Messages to a dead actor fail loudly for ask and count as dead letters for tell."""

    async def test_ask_to_a_stopped_actor_raises_actor_dead_error(self) -> None:
        journal = Journal()
        async with ActorSystem() as system:
            ref = await system.spawn(probe("a", journal), name="a")
            await system.stop(ref)
            assert not ref.is_alive
            with pytest.raises(ActorDeadError):
                await ref.ask("hello")

    async def test_tell_to_a_stopped_actor_is_a_dead_letter(self) -> None:
        journal = Journal()
        async with ActorSystem() as system:
            ref = await system.spawn(probe("a", journal), name="a")
            await system.stop(ref)
            await ref.tell("lost")
            ref.tell_nowait("lost too")
            assert system.statistics().dead_letters == 2

    async def test_queued_asks_fail_at_once_when_the_actor_stops(self) -> None:
        journal = Journal()
        gate = anyio.Event()
        errors: list[BaseException] = []
        async with ActorSystem() as system:
            ref = await system.spawn(probe("a", journal), name="a")
            await ref.tell(gate)

            async def asker(i: int) -> None:
                try:
                    await ref.ask(i, timeout=30)
                except ActorDeadError as exc:
                    errors.append(exc)

            async with anyio.create_task_group() as tg:
                for i in range(3):
                    tg.start_soon(asker, i)
                await anyio.wait_all_tasks_blocked()
                ref.stop()  # the actor stops after the message it handles
                gate.set()
            assert len(errors) == 3
            await ref.wait_stopped()

    async def test_a_senders_waiting_on_a_full_mailbox_are_released_as_dead_letters(
        self,
    ) -> None:
        journal = Journal()
        gate = anyio.Event()
        async with ActorSystem() as system:
            ref = await system.spawn(probe("a", journal), name="a", capacity=1)
            await ref.tell(gate)
            await anyio.wait_all_tasks_blocked()
            await ref.tell("fills")
            async with anyio.create_task_group() as tg:
                tg.start_soon(ref.tell, "blocked")
                await anyio.wait_all_tasks_blocked()
                ref.stop()
                gate.set()
            await ref.wait_stopped()
            assert system.statistics().dead_letters == 2  # "fills" and "blocked"


class TestLifecycle:
    """on_start before the first message, on_stop at the end, start failures reported."""

    async def test_hooks_run_in_order(self) -> None:
        journal = Journal()
        async with ActorSystem() as system:
            ref = await system.spawn(probe("a", journal), name="a")
            await ref.ask("m")
        assert journal.events == [("start", "a"), ("message", "a", "m"), ("stop", "a")]

    async def test_a_failing_on_start_raises_actor_start_error_from_spawn(self) -> None:
        journal = Journal()
        async with ActorSystem() as system:
            with pytest.raises(ActorStartError) as info:
                await system.spawn(probe("a", journal, fail_start=True), name="a")
            assert isinstance(info.value.reason, Crash)
            # The name is free again.
            ref = await system.spawn(probe("a", journal), name="a")
            assert ref.is_alive

    async def test_a_factory_returning_the_same_instance_twice_is_refused(self) -> None:
        journal = Journal()
        shared = Probe("shared", journal)
        tree = Supervisor([ChildSpec("a", lambda: shared)], max_restarts=1)
        async with ActorSystem() as system:
            with capture_logs() as logs:
                sup = await system.spawn(lambda: tree, name="sup")
                (child,) = await sup.ask(WhichChildren())
                await child.ref.tell("crash")
                reason = await sup.wait_stopped()
        assert isinstance(reason, RestartIntensityError)
        (gave_up,) = [e for e in logs if e["event"] == "restart intensity exceeded, giving up"]
        assert "already ran" in gave_up["reason"]

    async def test_every_log_line_of_an_actor_carries_its_path(self) -> None:
        class Chatty(Actor):
            async def on_receive(self, message: Any) -> Any:
                self.actor_log.info("hello")

        async with ActorSystem() as system:
            ref = await system.spawn(Chatty, name="chatty")
            with capture_logs() as logs:
                await ref.ask("x")
        assert logs == [{"actor": "/chatty", "event": "hello", "log_level": "info"}]


class TestWatch:
    """A watcher receives Terminated with the reason when the watched actor stops for good."""

    async def test_watcher_gets_terminated_with_the_crash_reason(self) -> None:
        journal = Journal()
        received: list[Terminated] = []
        got = anyio.Event()

        class Watcher(Actor):
            async def on_receive(self, message: Any) -> Any:
                if isinstance(message, Terminated):
                    received.append(message)
                    got.set()
                    return None
                self.actor_watch(message)
                return None

        async with ActorSystem() as system:
            watched = await system.spawn(probe("w", journal), name="watched")
            watcher = await system.spawn(Watcher, name="watcher")
            await watcher.ask(watched)
            await watched.tell("crash")
            with anyio.fail_after(5):
                await got.wait()
        assert received[0].ref is watched
        assert isinstance(received[0].reason, Crash)

    async def test_watching_a_dead_actor_delivers_terminated_at_once(self) -> None:
        journal = Journal()
        got = anyio.Event()
        reasons: list[BaseException | None] = []

        class Watcher(Actor):
            async def on_receive(self, message: Any) -> Any:
                if isinstance(message, Terminated):
                    reasons.append(message.reason)
                    got.set()
                else:
                    self.actor_watch(message)

        async with ActorSystem() as system:
            dead = await system.spawn(probe("d", journal), name="dead")
            await system.stop(dead)
            watcher = await system.spawn(Watcher, name="watcher")
            await watcher.tell(dead)
            with anyio.fail_after(5):
                await got.wait()
        assert reasons == [None]

    async def test_unwatch_stops_notifications(self) -> None:
        journal = Journal()
        notes: list[Any] = []

        class Watcher(Actor):
            async def on_receive(self, message: Any) -> Any:
                if isinstance(message, Terminated):
                    notes.append(message)
                elif message[0] == "watch":
                    self.actor_watch(message[1])
                else:
                    self.actor_unwatch(message[1])

        async with ActorSystem() as system:
            watched = await system.spawn(probe("w", journal), name="watched")
            watcher = await system.spawn(Watcher, name="watcher")
            await watcher.ask(("watch", watched))
            await watcher.ask(("unwatch", watched))
            await system.stop(watched)
            await watcher.ask(("unwatch", watched))  # a full round trip after the stop
        assert notes == []
