"""A management fleet to drive `aegis.mgmt.apps.*` / `aegis.mgmt.configs.*` from tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from nats.aio.client import Client

from aegis_actors import (
    ActorSystem,
    InstanceSettings,
    ManagementClient,
    ManagementService,
    RunningInstance,
    Subjects,
    start_instance,
)
from aegis_actors._wire import ERROR_CODE_HEADER, ERROR_HEADER

VERBS = [
    ("apps", "create"),
    ("apps", "get"),
    ("apps", "list"),
    ("apps", "update"),
    ("apps", "delete"),
    ("configs", "create"),
    ("configs", "get"),
    ("configs", "list"),
    ("configs", "update"),
    ("configs", "delete"),
    ("configs", "history"),
]
#: A well-formed ULID that no test ever creates (ULIDs made now start with 01).
NOBODY = "00000000000000000000000000"


class Api:
    """A running management fleet in one namespace, and ways to talk to it."""

    def __init__(self, nats: Client, namespace: str, instances: list[RunningInstance]) -> None:
        self.nats = nats
        self.subjects = Subjects(namespace)
        self.instances = instances
        self.client = ManagementClient(nats, namespace=namespace)

    async def raw(
        self, resource: str, verb: str, body: bytes, *, via: int | None = None
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """A request through the queue group, or to instance number `via` directly."""
        subject = self.subjects.mgmt(resource, verb)
        if via is not None:
            iid = self.instances[via].instance_id
            subject = self.subjects.instance(iid, f"{resource}_{verb}")
        msg = await self.nats.request(subject, body, timeout=10)
        reply = json.loads(msg.data)
        headers = dict(msg.headers or {})
        if not reply["ok"]:
            # Every error carries the NATS micro headers (docs/reference/errors.md).
            assert headers[ERROR_CODE_HEADER] == str(reply["status"])
            assert headers[ERROR_HEADER] == " ".join(reply["error"]["message"].split())
        return reply, headers

    async def call(
        self, resource: str, verb: str, params: Any, *, via: int | None = None
    ) -> dict[str, Any]:
        reply, _ = await self.raw(resource, verb, json.dumps(params).encode(), via=via)
        return reply

    async def ok(self, resource: str, verb: str, params: Any) -> dict[str, Any]:
        """A request that must succeed: its reply."""
        reply = await self.call(resource, verb, params)
        assert reply["ok"] is True, reply
        return reply

    async def app(self, name: str, comments: str = "") -> dict[str, Any]:
        return (await self.ok("apps", "create", {"name": name, "comments": comments}))["data"]

    async def config(self, app_id: str, name: str, value: dict[str, Any]) -> dict[str, Any]:
        params = {"applicationId": app_id, "name": name, "config": value}
        return await self.ok("configs", "create", params)

    async def still_serving(self) -> None:
        """Good requests after bad ones are answered as usual."""
        reply = await self.call("apps", "create", {"name": "alive"})
        assert reply["status"] in (201, 409), reply
        app = await self.ok("apps", "get", {"name": "alive"})
        params = {"applicationId": app["data"]["id"], "name": "alive", "config": {}}
        assert (await self.call("configs", "create", params))["status"] in (201, 409)
        assert (await self.call("configs", "list", {}))["status"] == 200


@asynccontextmanager
async def management(
    nats: Client, settings: InstanceSettings, count: int = 1
) -> AsyncIterator[Api]:
    async with ActorSystem() as system:
        running = [await start_instance(system, ManagementService, settings) for _ in range(count)]
        yield Api(nats, settings.namespace, running)


def error_of(reply: dict[str, Any]) -> tuple[int, str]:
    assert reply["ok"] is False, reply
    return reply["status"], reply["error"]["code"]


def parse_time(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value)


def value_of_size(size: int) -> dict[str, str]:
    """A config whose compact JSON is exactly `size` bytes."""
    value = {"k": "x" * (size - len('{"k":""}'))}
    assert len(json.dumps(value, separators=(",", ":"))) == size
    return value
