"""`aegis apps create|get|list|update|delete`: applications (`aegis.mgmt.apps.*`).

Every command that names an existing application takes its id or its name:
ids are ULIDs (26 uppercase characters) and names are lowercase, so the two
never look alike and no flag is needed to say which one is meant.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from rich.table import Table

from aegis_actors._configuration.models import Application, Configuration, is_ulid
from aegis_actors._configuration.requests import ApplicationPage
from aegis_actors._mgmt.client import Answer, ManagementClient
from aegis_actors.cli._client import (
    Action,
    UsageError,
    age,
    client_options,
    console,
    execute,
    list_pages,
    paging_options,
    print_json,
    print_page,
    shown,
    table,
    usage_error,
)

APP_HELP = "the application's id or name"


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "apps",
        help="manage applications (create, get, list, update, delete)",
        description="Manage applications, the owners of configurations, through the "
        "aegis-mgmt service.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    options = client_options()

    create = verbs.add_parser("create", parents=[options], help="create an application")
    create.add_argument("name", metavar="NAME", help="unique; ^[a-z][a-z0-9-]{2,63}$")
    create.add_argument("--comments", default="", help="what it is for (0-1000 characters)")
    create.set_defaults(handler=lambda args: execute(args, _create))

    get = verbs.add_parser(
        "get", parents=[options], help="show an application, its revision and configurations"
    )
    get.add_argument("app", metavar="APP", help=APP_HELP)
    get.set_defaults(handler=lambda args: execute(args, _get))

    listing = verbs.add_parser("list", parents=[options], help="list applications by name")
    paging_options(listing)
    listing.set_defaults(handler=lambda args: execute(args, _list))

    update = verbs.add_parser(
        "update", parents=[options], help="rename or comment an application at its revision"
    )
    update.add_argument("app", metavar="APP", help=APP_HELP)
    update.add_argument(
        "--revision", type=int, required=True, help="the revision you read (`apps get`)"
    )
    update.add_argument("--name", default=None, help="a new unique name")
    update.add_argument("--comments", default=None, help="new comments (0-1000 characters)")
    update.set_defaults(handler=checked(update, _update, _changes_something))

    delete = verbs.add_parser(
        "delete", parents=[options], help="delete an application and all its configurations"
    )
    delete.add_argument("app", metavar="APP", help=APP_HELP)
    delete.add_argument("--revision", type=int, default=None, help="only if still at this revision")
    delete.set_defaults(handler=lambda args: execute(args, _delete))


def checked(
    parser: argparse.ArgumentParser, action: Action, check: Callable[[argparse.Namespace], None]
) -> Callable[[argparse.Namespace], int]:
    """A handler that runs `check` (which may raise `UsageError`: exit 2) before `action`."""

    def handle(args: argparse.Namespace) -> int:
        try:
            check(args)
        except UsageError as exc:
            return usage_error(parser, exc)
        return execute(args, action)

    return handle


def _changes_something(args: argparse.Namespace) -> None:
    if args.name is None and args.comments is None:
        raise UsageError("nothing to change: give --name, --comments or both")


async def application_id(client: ManagementClient, app: str) -> str:
    """The id of the application named by its id or its name (404 if there is none)."""
    if is_ulid(app):
        return app
    return (await client.get_application(name=app)).application.id


async def find_application(client: ManagementClient, app: str) -> Application:
    """The application named by its id or its name (404 if there is none)."""
    if is_ulid(app):
        return (await client.get_application(app)).application
    return (await client.get_application(name=app)).application


def by_id_or_name(app: str) -> dict[str, str]:
    """The `apps.get` parameters for an application named by its id or its name."""
    return {"id": app} if is_ulid(app) else {"name": app}


def fields_table(title: str, fields: dict[str, Any], revision: int | None) -> Table:
    """A record's fields, one per row (the wire names, as `--json` shows them)."""
    result = Table(show_header=False, box=None, title=shown(title), title_justify="left")
    result.add_column(style="bold")
    result.add_column()
    for field, value in fields.items():
        result.add_row(field, shown(value))
    if revision is not None:
        result.add_row("revision", str(revision))
    return result


def _show(
    answer: Answer, title: str, configurations: list[Configuration] | None = None
) -> Application:
    app = Application.model_validate(answer.data)
    fields: dict[str, Any] = app.model_dump(mode="json")
    ids = fields.pop("configurationIds")
    fields["configurations"] = len(ids)
    out = console()
    out.print(fields_table(title, fields, answer.revision))
    if configurations:
        rows = table("CONFIGURATION", "ID", "UPDATED", no_wrap=("CONFIGURATION", "ID", "UPDATED"))
        for config in configurations:
            rows.add_row(shown(config.name), shown(config.id), age(config.updated_at))
        out.print(rows)
    return app


async def _create(client: ManagementClient, args: argparse.Namespace) -> None:
    answer = await client.request("apps", "create", {"name": args.name, "comments": args.comments})
    if args.json:
        print_json(answer.raw)
    else:
        _show(answer, f"created {args.name}")


async def _get(client: ManagementClient, args: argparse.Namespace) -> None:
    answer = await client.request("apps", "get", by_id_or_name(args.app))
    if args.json:
        print_json(answer.raw)
        return
    app = Application.model_validate(answer.data)
    configurations = [c async for c in client.all_configurations(app.id)]
    _show(answer, app.name, configurations)


async def _update(client: ManagementClient, args: argparse.Namespace) -> None:
    params: dict[str, Any] = {
        "id": await application_id(client, args.app),
        "revision": args.revision,
    }
    for field in ("name", "comments"):
        if getattr(args, field) is not None:
            params[field] = getattr(args, field)
    answer = await client.request("apps", "update", params)
    if args.json:
        print_json(answer.raw)
    else:
        _show(answer, f"updated {answer.data['name']}")


async def _delete(client: ManagementClient, args: argparse.Namespace) -> None:
    # Read it first, to say what goes with it.
    found = await find_application(client, args.app)
    params: dict[str, Any] = {"id": found.id}
    if args.revision is not None:
        params["revision"] = args.revision
    answer = await client.request("apps", "delete", params)
    if args.json:
        print_json(answer.raw)
        return
    count = len(found.configuration_ids)
    also = f" and its {count} configuration{'s' if count > 1 else ''}" if count else ""
    console().print(shown(f"deleted {found.name}{also}"))


async def _list(client: ManagementClient, args: argparse.Namespace) -> None:
    page = await list_pages(client, args, "apps", {}, ApplicationPage)
    if page is None:
        return
    rows = table(
        "NAME", "ID", "CONFIGS", "UPDATED", "COMMENTS", no_wrap=("NAME", "ID", "CONFIGS", "UPDATED")
    )
    for app in page.items:
        rows.add_row(
            shown(app.name),
            shown(app.id),
            str(len(app.configuration_ids)),
            age(app.updated_at),
            shown(app.comments),
        )
    print_page(rows, page.next_cursor)
