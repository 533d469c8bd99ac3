"""Call the greeter from a Python program outside the runtime (a script, a web app)."""

from greeter import Greeter

from aegis_actors import (
    ActorSystem,
    Client,
    ConnectionSettings,
    InstanceSettings,
    run,
    start_instance,
)


async def call_greeter(url: str) -> None:
    async with Client(url=url) as client:
        print(await client.call("greeter", "hello", {"name": "Ada"}))


async def main(url: str) -> None:
    """Start one greeter in this process, so that the call has someone to answer it."""
    async with ActorSystem() as system:
        await start_instance(system, Greeter, InstanceSettings(nats=ConnectionSettings(url=url)))
        await call_greeter(url)


if __name__ == "__main__":  # against `aegis run greeter.toml`
    run(lambda: call_greeter("nats://127.0.0.1:4222"))

# Output:
# Hello, Ada!
