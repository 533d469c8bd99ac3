"""What the CLI prints never carries raw control or invisible characters to the terminal.

The text rules stop new hostile text at the API; these records are written
straight into KV, as data stored before the rules, or by another client, would be.
"""

from __future__ import annotations

import io
import json
import unicodedata
from typing import Any

import pytest
from nats.aio.client import Client
from rich.console import Console

from aegis_actors import InstanceSettings, KVBucket
from aegis_actors._buckets import Buckets, application_key, configuration_key, instance_key
from aegis_actors._text import REFUSED_CATEGORIES
from aegis_actors._top import FleetSampler, render
from tests.cli_support import management_cli

pytestmark = pytest.mark.nats

#: Clears the screen, retitles the window, rewrites the line, reverses what follows.
HOSTILE = "\x1b[2J\x1b]0;pwned\x07\r\u202e\u200b\x9b31m"


def raw(text: str) -> list[str]:
    """The characters in `text` a terminal would act on (line breaks of the layout aside)."""
    return [c for c in text if unicodedata.category(c) in REFUSED_CATEGORIES and c != "\n"]


async def rewrite(bucket: KVBucket, key: str, **fields: Any) -> None:
    entry = await bucket.get(key)
    assert entry is not None
    await bucket.put(key, json.dumps({**json.loads(entry.value), **fields}).encode())


class TestHostileRecords:
    """Every table and JSON output escapes what it cannot show."""

    async def test_every_listing_and_record_is_escaped(
        self,
        capsys: pytest.CaptureFixture[str],
        instance_settings: InstanceSettings,
        nats_url: str,
        nats_client: Client,
        namespace: str,
    ) -> None:
        js = nats_client.jetstream()
        buckets = Buckets(namespace)
        async with management_cli(capsys, instance_settings, nats_url) as cli:
            await cli.json("services", "create", "orders", "--owner", "t", "--version", "1.0.0")
            app = (await cli.json("apps", "create", "billing"))["data"]
            config = (await cli.json("configs", "create", "billing", "db", "--value", "{}"))["data"]
            await rewrite(
                KVBucket(js, buckets.definitions),
                "orders",
                owner=HOSTILE,
                description=HOSTILE,
            )
            configuration = KVBucket(js, buckets.configuration)
            await rewrite(configuration, application_key(app["id"]), comments=HOSTILE)
            await rewrite(
                configuration,
                configuration_key(config["id"]),
                comments=HOSTILE,
                config={HOSTILE: HOSTILE},
            )
            registry = KVBucket(js, buckets.registry)
            await registry.put(
                instance_key("evil", "evil-0badc0de"),
                json.dumps(
                    {
                        "serviceName": "evil",
                        "instanceId": "evil-0badc0de",
                        "version": HOSTILE,
                        "status": "ACTIVE",
                        "lastHeartbeat": "2026-01-01T00:00:00Z",
                        "metadata": {"host": HOSTILE, HOSTILE: 1},
                    }
                ).encode(),
            )
            commands = [
                ("services", "list"),
                ("services", "get", "orders"),
                ("apps", "list"),
                ("apps", "get", "billing"),
                ("configs", "list"),
                ("configs", "get", "billing", "db"),
                ("configs", "history", "billing", "db"),
                ("instances", "list"),
                ("instances", "get", "evil-0badc0de"),
            ]
            for command in commands:
                for json_output in ((), ("--json",)):
                    code, out, err = await cli(*command, *json_output)
                    assert code == 0, (command, err)
                    assert raw(out) == [], (command, json_output, out)
                    assert raw(err) == [], (command, json_output, err)
                    if json_output:
                        json.loads(out)  # still JSON, the same values
                    elif command[1] != "history":  # (its value column is cut at 80 columns)
                        assert "\\x1b[2J" in out or "\\u202e" in out, (command, out)

        screen = io.StringIO()
        view = await FleetSampler(nats_client, namespace).sample()
        Console(file=screen, width=120).print(render(view))
        assert "evil" in screen.getvalue()
        assert raw(screen.getvalue()) == []
