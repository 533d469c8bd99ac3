"""`aegis instances list|get`: live instances from the registry (`aegis.mgmt.instances.*`)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table
from rich.text import Text

from aegis_actors._mgmt.client import ManagementClient
from aegis_actors._mgmt.models import InstanceList
from aegis_actors._registry.models import InstanceStatus, ServiceInstance
from aegis_actors.cli._client import (
    age,
    client_options,
    console,
    execute,
    print_json,
    shown,
    table,
)

_STATUS_STYLE = {
    InstanceStatus.ACTIVE: "green",
    InstanceStatus.STANDBY: "yellow",
    InstanceStatus.UNHEALTHY: "red",
}


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "instances",
        help="show live service instances (list, get)",
        description="Show the live service instances the registry holds.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    options = client_options()

    listing = verbs.add_parser("list", parents=[options], help="list live instances")
    listing.add_argument("--service", default=None, help="only the instances of this service")
    listing.set_defaults(handler=lambda args: execute(args, _list))

    get = verbs.add_parser("get", parents=[options], help="show one instance")
    get.add_argument("instance_id", metavar="INSTANCE_ID", help="{serviceName}-{8 hex}")
    get.set_defaults(handler=lambda args: execute(args, _get))


def _status(instance: ServiceInstance) -> Text:
    return Text(instance.status.value, style=_STATUS_STYLE[instance.status])


async def _list(client: ManagementClient, args: argparse.Namespace) -> None:
    params = {"serviceName": args.service} if args.service is not None else {}
    answer = await client.request("instances", "list", params)
    if args.json:
        print_json(answer.raw)
        return
    rows = table(
        "INSTANCE", "SERVICE", "VERSION", "STATUS", "HEARTBEAT", "HOST", "PID",
        no_wrap=("INSTANCE", "SERVICE", "VERSION", "STATUS", "HEARTBEAT", "PID"),
    )  # fmt: skip
    for instance in InstanceList.model_validate(answer.data).items:
        rows.add_row(
            shown(instance.instance_id),
            shown(instance.service_name),
            shown(instance.version),
            _status(instance),
            age(instance.last_heartbeat),
            shown(instance.metadata.get("host", "")),
            shown(instance.metadata.get("pid", "")),
        )
    console().print(rows)


async def _get(client: ManagementClient, args: argparse.Namespace) -> None:
    answer = await client.request("instances", "get", {"instanceId": args.instance_id})
    if args.json:
        print_json(answer.raw)
        return
    instance = ServiceInstance.model_validate(answer.data)
    table = Table(
        show_header=False, box=None, title=shown(instance.instance_id), title_justify="left"
    )
    table.add_column(style="bold")
    table.add_column()
    fields: dict[str, Any] = instance.model_dump(mode="json")
    fields["lastHeartbeat"] = f"{fields['lastHeartbeat']} ({age(instance.last_heartbeat)})"
    metadata = fields.pop("metadata")
    for field, value in fields.items():
        if field == "status":
            table.add_row(field, _status(instance))
        elif value is not None:
            table.add_row(field, shown(value))
    for key, value in sorted(metadata.items()):
        table.add_row(shown(f"metadata.{key}"), shown(value))
    console().print(table)
