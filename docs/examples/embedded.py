"""A program that brings its own nats-server: the greeter, served and called, nothing installed."""

from greeter import Greeter

from aegis_actors import (
    ActorSystem,
    Client,
    ConnectionSettings,
    InstanceSettings,
    NatsServer,
    run,
    start_instance,
)


async def main() -> None:
    with NatsServer() as server:  # a free loopback port, JetStream in a temporary folder
        settings = InstanceSettings(nats=ConnectionSettings(url=server.url))
        async with ActorSystem() as system:
            await start_instance(system, Greeter, settings)
            async with Client(url=server.url) as client:
                print(await client.call("greeter", "hello", {"name": "Grace"}))


if __name__ == "__main__":
    run(main)

# Output:
# Hello, Grace!
