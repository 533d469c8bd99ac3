"""Actors without NATS: tell, ask, Failure, watching."""

from typing import Any

from aegis_actors import Actor, ActorDeadError, ActorRef, ActorSystem, Failure, Terminated, run


class Counter(Actor):
    def __init__(self) -> None:
        self.count = 0

    async def on_receive(self, message: Any) -> Any:
        if message == "increment":
            self.count += 1
        elif message == "reset":
            if self.count > 10:  # refuse without crashing: the caller's ask raises it
                return Failure(ValueError("too many to reset"))
            self.count = 0
        return self.count


class Watcher(Actor):
    def __init__(self, watched: ActorRef) -> None:
        self.watched = watched

    async def on_start(self) -> None:
        self.actor_watch(self.watched)

    async def on_receive(self, message: Any) -> Any:
        if isinstance(message, Terminated):
            print(f"{message.ref.name} stopped (reason: {message.reason})")
        return None


async def main() -> None:
    async with ActorSystem() as system:
        counter = await system.spawn(Counter, name="counter")
        await counter.tell("increment")  # waits only while the mailbox is full
        await counter.tell("increment")
        print(await counter.ask("get", timeout=1.0))

        watcher = await system.spawn(lambda: Watcher(counter), name="watcher")
        await system.stop(counter)
        await watcher.ask("sync")  # answered after the Terminated queued before it
        try:
            await counter.ask("get", timeout=1.0)
        except ActorDeadError as exc:
            print(exc)


if __name__ == "__main__":
    run(main)  # on uvloop when installed (`pip install aegis-actors[fast]`)

# Output:
# 2
# counter stopped (reason: None)
# actor /counter is dead
