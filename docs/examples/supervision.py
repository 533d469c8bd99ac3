"""A supervisor restarts a crashed child, and under rest_for_one the children after it."""

from typing import Any

from aegis_actors import (
    Actor,
    ActorSystem,
    ChildSpec,
    Restart,
    Strategy,
    Supervisor,
    WhichChildren,
    run,
)


class Database(Actor):
    def __init__(self) -> None:
        self.rows: list[str] = []  # lost in a crash: a restart starts from a fresh actor

    async def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("disk on fire")
        if isinstance(message, str):
            self.rows.append(message)
        return len(self.rows)


class Api(Actor):
    async def on_restart(self, reason: BaseException | None) -> None:
        print(f"api restarted after: {reason!r}")

    async def on_receive(self, message: Any) -> Any:
        return "ok"


def make_tree() -> Supervisor:  # a factory: each (re)start gets fresh actors
    return Supervisor(
        [
            ChildSpec("db", Database),
            ChildSpec("api", Api, restart=Restart.TRANSIENT, shutdown=10.0),
        ],
        strategy=Strategy.REST_FOR_ONE,  # a crash of db restarts db, then api
        max_restarts=3,
        within_seconds=5.0,
    )


async def main() -> None:
    async with ActorSystem() as system:
        app = await system.spawn(make_tree, name="app")
        children = {child.id: child.ref for child in await app.ask(WhichChildren())}
        db, api = children["db"], children["api"]
        print(await db.ask("first row"))
        try:
            await db.ask("crash")  # the exception crashes db and reaches this caller too
        except RuntimeError as exc:
            print(f"ask raised: {exc}")
        print(await db.ask("second row"))  # the same ref reaches the new incarnation
        print(await api.ask("ping"))
        for child in await app.ask(WhichChildren()):  # restarts: the child's own crashes
            print(f"{child.id}: running={child.running} restarts={child.restart_count}")


if __name__ == "__main__":
    run(main)

# Output:
# 1
# ask raised: disk on fire
# 1
# api restarted after: RuntimeError('disk on fire')
# ok
# db: running=True restarts=1
# api: running=True restarts=0
