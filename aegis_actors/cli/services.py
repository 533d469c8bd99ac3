"""`aegis services create|get|list|update|delete`: service definitions (`aegis.mgmt.services.*`)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from aegis_actors._mgmt.client import Answer, ManagementClient
from aegis_actors._mgmt.models import ServiceDefinition, ServicePage
from aegis_actors.cli._client import (
    client_options,
    console,
    execute,
    list_pages,
    paging_options,
    print_json,
    print_page,
    shown,
    table,
)


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "services",
        help="manage service definitions (create, get, list, update, delete)",
        description="Manage service definitions through the aegis-mgmt service.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    options = client_options()

    create = verbs.add_parser("create", parents=[options], help="create a definition")
    create.add_argument("service_name", metavar="NAME", help="^[a-z][a-z0-9-]{2,63}$")
    create.add_argument(
        "--owner", required=True, help="who answers for it (1-100 characters, not blank)"
    )
    create.add_argument("--version", required=True, help="MAJOR.MINOR.PATCH")
    create.add_argument("--description", default="", help="what it does (0-500 characters)")
    create.set_defaults(handler=lambda args: execute(args, _create))

    get = verbs.add_parser("get", parents=[options], help="show a definition and its revision")
    get.add_argument("service_name", metavar="NAME")
    get.set_defaults(handler=lambda args: execute(args, _get))

    listing = verbs.add_parser("list", parents=[options], help="list definitions by name")
    paging_options(listing)
    listing.set_defaults(handler=lambda args: execute(args, _list))

    update = verbs.add_parser(
        "update", parents=[options], help="change a definition at its current revision"
    )
    update.add_argument("service_name", metavar="NAME")
    update.add_argument(
        "--revision", type=int, required=True, help="the revision you read (`services get`)"
    )
    update.add_argument("--owner", default=None)
    update.add_argument("--version", default=None)
    update.add_argument("--description", default=None)
    update.set_defaults(handler=lambda args: execute(args, _update))

    delete = verbs.add_parser("delete", parents=[options], help="delete a definition")
    delete.add_argument("service_name", metavar="NAME")
    delete.add_argument("--revision", type=int, default=None, help="only if still at this revision")
    delete.set_defaults(handler=lambda args: execute(args, _delete))


def _show(answer: Answer, args: argparse.Namespace, done: str) -> None:
    if args.json:
        print_json(answer.raw)
        return
    definition = ServiceDefinition.model_validate(answer.data)
    table = Table(show_header=False, box=None, title=shown(done), title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for field, value in definition.model_dump(mode="json").items():
        table.add_row(field, shown(value))
    table.add_row("revision", str(answer.revision))
    console().print(table)


async def _create(client: ManagementClient, args: argparse.Namespace) -> None:
    params = {
        "serviceName": args.service_name,
        "owner": args.owner,
        "version": args.version,
        "description": args.description,
    }
    answer = await client.request("services", "create", params)
    _show(answer, args, f"created {args.service_name}")


async def _get(client: ManagementClient, args: argparse.Namespace) -> None:
    answer = await client.request("services", "get", {"serviceName": args.service_name})
    _show(answer, args, args.service_name)


async def _update(client: ManagementClient, args: argparse.Namespace) -> None:
    params: dict[str, Any] = {"serviceName": args.service_name, "revision": args.revision}
    for field in ("owner", "version", "description"):
        if getattr(args, field) is not None:
            params[field] = getattr(args, field)
    answer = await client.request("services", "update", params)
    _show(answer, args, f"updated {args.service_name}")


async def _delete(client: ManagementClient, args: argparse.Namespace) -> None:
    params: dict[str, Any] = {"serviceName": args.service_name}
    if args.revision is not None:
        params["revision"] = args.revision
    answer = await client.request("services", "delete", params)
    if args.json:
        print_json(answer.raw)
    else:
        console().print(shown(f"deleted {args.service_name}"))


async def _list(client: ManagementClient, args: argparse.Namespace) -> None:
    page = await list_pages(client, args, "services", {}, ServicePage)
    if page is None:
        return
    rows = table(
        "NAME", "VERSION", "OWNER", "UPDATED", "DESCRIPTION", no_wrap=("NAME", "VERSION", "UPDATED")
    )
    for item in page.items:
        updated = item.model_dump(mode="json")["updatedAt"]
        rows.add_row(
            shown(item.service_name),
            shown(item.version),
            shown(item.owner),
            updated,
            shown(item.description),
        )
    print_page(rows, page.next_cursor)
