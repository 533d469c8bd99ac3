"""Supervision with OTP semantics: strategies, restart types, intensity, backoff, shutdown."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from aegis_actors import (
    Actor,
    ActorRef,
    ActorStartError,
    ActorSystem,
    AutoShutdown,
    ChildSpec,
    ChildSpecError,
    Restart,
    RestartIntensityError,
    StartChild,
    Strategy,
    Supervisor,
    TerminateChild,
    WhichChildren,
)
from aegis_actors._backoff import Backoff
from aegis_actors._supervisor import Clock
from tests.probes import Crash, Journal, probe

NO_BACKOFF = Backoff(base=0.0, cap=0.0)


def tree(journal: Journal, strategy: Strategy, **kwargs: Any) -> Supervisor:
    return Supervisor(
        [ChildSpec(name, probe(name, journal)) for name in ("a", "b", "c")],
        strategy=strategy,
        backoff=NO_BACKOFF,
        **kwargs,
    )


async def children(sup: ActorRef) -> dict[str, ActorRef]:
    return {info.id: info.ref for info in await sup.ask(WhichChildren())}


def after(journal: Journal, index: int) -> list[tuple[Any, ...]]:
    return [e for e in journal.events[index:] if e[0] in ("start", "stop")]


class TestStrategies:
    """Which children are stopped and restarted when one crashes."""

    async def test_children_start_in_order_and_stop_in_reverse(self) -> None:
        journal = Journal()
        async with ActorSystem() as system:
            await system.spawn(lambda: tree(journal, Strategy.ONE_FOR_ONE), name="sup")
        assert journal.events == [
            ("start", "a"), ("start", "b"), ("start", "c"),
            ("stop", "c"), ("stop", "b"), ("stop", "a"),
        ]  # fmt: skip

    async def test_one_for_one_restarts_only_the_crashed_child(self) -> None:
        journal = Journal()
        async with ActorSystem() as system:
            sup = await system.spawn(lambda: tree(journal, Strategy.ONE_FOR_ONE), name="sup")
            refs = await children(sup)
            mark = len(journal.events)
            await refs["b"].tell("crash")
            await journal.wait_count(("start", "b"), 2)
            assert after(journal, mark) == [("stop", "b"), ("start", "b")]
            assert ("restart", "b", "Crash") in journal.events
            # The ref survived the restart.
            assert await refs["b"].ask("ping") == ("echo", "ping")

    async def test_one_for_all_stops_the_others_in_reverse_and_restarts_all_in_order(
        self,
    ) -> None:
        journal = Journal()
        async with ActorSystem() as system:
            sup = await system.spawn(lambda: tree(journal, Strategy.ONE_FOR_ALL), name="sup")
            refs = await children(sup)
            mark = len(journal.events)
            await refs["b"].tell("crash")
            await journal.wait_count(("start", "c"), 2)
            assert after(journal, mark) == [
                ("stop", "b"), ("stop", "c"), ("stop", "a"),
                ("start", "a"), ("start", "b"), ("start", "c"),
            ]  # fmt: skip

    async def test_rest_for_one_restarts_the_crashed_child_and_those_after_it(self) -> None:
        journal = Journal()
        async with ActorSystem() as system:
            sup = await system.spawn(lambda: tree(journal, Strategy.REST_FOR_ONE), name="sup")
            refs = await children(sup)
            mark = len(journal.events)
            await refs["b"].tell("crash")
            await journal.wait_count(("start", "c"), 2)
            assert after(journal, mark) == [
                ("stop", "b"), ("stop", "c"), ("start", "b"), ("start", "c"),
            ]  # fmt: skip
            assert journal.events.count(("start", "a")) == 1


class TestRestartTypes:
    """permanent always comes back, transient only after a crash, temporary never."""

    @pytest.mark.parametrize(
        ("restart", "message", "restarted"),
        [
            (Restart.PERMANENT, "stop", True),
            (Restart.PERMANENT, "crash", True),
            (Restart.TRANSIENT, "stop", False),
            (Restart.TRANSIENT, "crash", True),
            (Restart.TEMPORARY, "stop", False),
            (Restart.TEMPORARY, "crash", False),
        ],
    )
    async def test_restart_type(self, restart: Restart, message: str, restarted: bool) -> None:
        journal = Journal()
        sentinel = ChildSpec("z", probe("z", journal))
        specs = [ChildSpec("x", probe("x", journal), restart=restart), sentinel]

        async with ActorSystem() as system:
            sup = await system.spawn(lambda: Supervisor(specs, backoff=NO_BACKOFF), name="sup")
            refs = await children(sup)
            await refs["x"].tell(message)
            await journal.wait_count(("stop", "x"), 1)
            if restarted:
                await journal.wait_count(("start", "x"), 2)
                assert refs["x"].is_alive
            else:
                reason = await refs["x"].wait_stopped()
                assert isinstance(reason, Crash) == (message == "crash")
                assert set(await children(sup)) == {"z"}


class TestIntensity:
    """Past max_restarts within within_seconds a supervisor stops its children and fails."""

    async def test_escalation_through_two_levels(self) -> None:
        journal = Journal()

        def inner() -> Supervisor:
            return Supervisor(
                [ChildSpec("worker", probe("worker", journal))],
                max_restarts=1,
                within_seconds=60,
                backoff=NO_BACKOFF,
            )

        def outer() -> Supervisor:
            return Supervisor(
                [ChildSpec("inner", inner), ChildSpec("sibling", probe("sibling", journal))],
                max_restarts=1,
                within_seconds=60,
                backoff=NO_BACKOFF,
            )

        async with ActorSystem() as system:
            with capture_logs() as logs:
                top = await system.spawn(outer, name="outer")
                for round_ in range(1, 5):
                    # The worker's ref changes when "inner" is rebuilt: look it up each time.
                    inner_ref = (await children(top))["inner"]
                    worker = (await children(inner_ref))["worker"]
                    await worker.tell("crash")
                    await journal.wait_count(("stop", "worker"), round_)
                    if not top.is_alive or round_ == 4:
                        break
                    await journal.wait_count(("start", "worker"), round_ + 1)
                reason = await top.wait_stopped()

        assert isinstance(reason, RestartIntensityError)
        assert reason.supervisor == "/outer"
        assert isinstance(reason.__cause__, RestartIntensityError)
        assert reason.__cause__.supervisor == "/outer/inner"
        gave_up = [e["actor"] for e in logs if e["event"].startswith("restart intensity")]
        assert gave_up == ["/outer/inner", "/outer/inner", "/outer"]
        assert journal.events[-1] == ("stop", "sibling"), "children stopped before failing"

    async def test_every_restart_is_logged_with_supervisor_child_reason_and_count(self) -> None:
        journal = Journal()
        async with ActorSystem() as system:
            sup = await system.spawn(lambda: tree(journal, Strategy.ONE_FOR_ONE), name="sup")
            refs = await children(sup)
            with capture_logs() as logs:
                for n in (1, 2):
                    await refs["a"].tell("crash")
                    await journal.wait_count(("start", "a"), n + 1)
        restarts = [e for e in logs if e["event"] == "restarting child"]
        assert [(e["supervisor"], e["child"], e["restart_count"]) for e in restarts] == [
            ("/sup", "a", 1),
            ("/sup", "a", 2),
        ]
        assert restarts[0]["reason"] == "Crash('a crashed')"
        assert restarts[0]["log_level"] == "warning"


class TestBackoff:
    """Consecutive restarts wait exponentially longer, with jitter."""

    async def test_consecutive_restarts_wait_exponentially_longer(self) -> None:
        journal = Journal()
        waits: list[float] = []

        async def fake_sleep(seconds: float) -> None:
            waits.append(seconds)
            await anyio.lowlevel.checkpoint()

        clock = Clock(now=lambda: 0.0, rand=lambda: 0.0, sleep=fake_sleep)
        async with ActorSystem() as system:
            sup = await system.spawn(
                lambda: Supervisor(
                    [ChildSpec("a", probe("a", journal))],
                    max_restarts=10,
                    backoff=Backoff(base=0.1, cap=0.5, jitter=0.5),
                    clock=clock,
                ),
                name="sup",
            )
            ref = (await children(sup))["a"]
            for n in range(5):
                await ref.tell("crash")
                await journal.wait_count(("start", "a"), n + 2)
        assert waits == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])

    async def test_jitter_shortens_the_wait(self) -> None:
        waits: list[float] = []
        journal = Journal()

        async def fake_sleep(seconds: float) -> None:
            waits.append(seconds)

        clock = Clock(now=lambda: 0.0, rand=lambda: 1.0, sleep=fake_sleep)
        async with ActorSystem() as system:
            sup = await system.spawn(
                lambda: Supervisor(
                    [ChildSpec("a", probe("a", journal))],
                    backoff=Backoff(base=0.2, jitter=0.5),
                    clock=clock,
                ),
                name="sup",
            )
            await (await children(sup))["a"].tell("crash")
            await journal.wait_count(("start", "a"), 2)
        assert waits == pytest.approx([0.1])


class TestShutdown:
    """Each child gets its shutdown timeout, then it is cancelled."""

    async def test_a_child_that_will_not_stop_is_cancelled_after_its_timeout(self) -> None:
        cancelled = anyio.Event()

        class Stubborn(Actor):
            async def on_stop(self) -> None:
                try:
                    await anyio.sleep_forever()
                finally:
                    cancelled.set()

        async with ActorSystem() as system:
            await system.spawn(
                lambda: Supervisor([ChildSpec("stubborn", Stubborn, shutdown=0.05)]),
                name="sup",
            )
            with capture_logs() as logs:
                await system.shutdown()
        assert cancelled.is_set()
        assert any(e["event"] == "child did not stop in time, cancelling" for e in logs)

    async def test_terminate_child_stops_it_for_good(self) -> None:
        journal = Journal()
        async with ActorSystem() as system:
            sup = await system.spawn(lambda: tree(journal, Strategy.ONE_FOR_ONE), name="sup")
            refs = await children(sup)
            assert await sup.ask(TerminateChild("b")) is True
            assert not refs["b"].is_alive
            assert list(await children(sup)) == ["a", "c"]
            assert await sup.ask(TerminateChild("b")) is False

    async def test_system_stop_refuses_an_actor_that_is_not_top_level(self) -> None:
        journal = Journal()
        async with ActorSystem() as system:
            sup = await system.spawn(lambda: tree(journal, Strategy.ONE_FOR_ONE), name="sup")
            refs = await children(sup)
            with anyio.fail_after(5), pytest.raises(ValueError, match="/sup/b is not a top-level"):
                await system.stop(refs["b"])
            assert refs["b"].is_alive
            await system.stop(sup)
            assert not sup.is_alive
            await system.stop(sup)  # already stopped: nothing to do


class TestSpecs:
    """Every child spec is validated before any child starts."""

    def test_invalid_specs_are_all_reported_before_anything_starts(self) -> None:
        journal = Journal()
        with pytest.raises(ChildSpecError) as info:
            Supervisor(
                [
                    ChildSpec("ok", probe("ok", journal)),
                    ChildSpec("ok", probe("dup", journal)),
                    ChildSpec("bad/id", probe("x", journal)),
                    ChildSpec("neg", probe("x", journal), shutdown=-1),
                    ChildSpec("cap", probe("x", journal), capacity=0),
                    ChildSpec("sig", probe("x", journal), significant=True),
                ]
            )
        problems = " | ".join(info.value.problems)
        for expected in ("duplicate id", "id must be", "shutdown", "capacity", "significant"):
            assert expected in problems
        assert journal.events == []

    async def test_a_child_failing_to_start_stops_the_started_ones_and_fails_the_start(
        self,
    ) -> None:
        journal = Journal()
        specs = [
            ChildSpec("a", probe("a", journal)),
            ChildSpec("b", probe("b", journal, fail_start=True)),
            ChildSpec("c", probe("c", journal)),
        ]
        async with ActorSystem() as system:
            with pytest.raises(ActorStartError):
                await system.spawn(lambda: Supervisor(specs), name="sup")
        assert journal.events == [("start", "a"), ("start-failed", "b"), ("stop", "a")]

    async def test_start_child_with_a_bad_spec_fails_the_ask_not_the_supervisor(self) -> None:
        journal = Journal()
        async with ActorSystem() as system:
            sup = await system.spawn(lambda: tree(journal, Strategy.ONE_FOR_ONE), name="sup")
            with pytest.raises(ChildSpecError, match="duplicate"):
                await sup.ask(StartChild(ChildSpec("a", probe("a2", journal))))
            with pytest.raises(ActorStartError):
                await sup.ask(StartChild(ChildSpec("d", probe("d", journal, fail_start=True))))
            ref = await sup.ask(StartChild(ChildSpec("e", probe("e", journal))))
            assert ref.path == "/sup/e"
            assert list(await children(sup)) == ["a", "b", "c", "e"]


class TestAutoShutdown:
    """A significant child's exit stops its supervisor, which its parent then restarts."""

    async def test_any_significant_child_exit_restarts_the_whole_tree(self) -> None:
        journal = Journal()

        def instance() -> Supervisor:
            return Supervisor(
                [
                    ChildSpec(
                        "conn", probe("conn", journal), restart=Restart.TEMPORARY, significant=True
                    ),
                    ChildSpec("worker", probe("worker", journal)),
                ],
                auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
                backoff=NO_BACKOFF,
            )

        async with ActorSystem() as system:
            top = await system.spawn(
                lambda: Supervisor([ChildSpec("instance", instance)], backoff=NO_BACKOFF),
                name="top",
            )
            inst = (await children(top))["instance"]
            await (await children(inst))["conn"].tell("crash")
            await journal.wait_count(("start", "worker"), 2)
            await journal.wait_count(("start", "conn"), 2)
        assert journal.events[:6] == [
            ("start", "conn"), ("start", "worker"),
            ("stop", "conn"), ("stop", "worker"),
            ("start", "conn"), ("start", "worker"),
        ]  # fmt: skip
