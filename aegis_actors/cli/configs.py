"""`aegis configs create|get|list|update|delete|history`: configurations (`aegis.mgmt.configs.*`).

A configuration is named by its id, or by its application (id or name) and
its own name: `aegis configs get billing db`. A value comes from a file
(`--file value.json`, `-` for stdin) or inline (`--value '{"pool": 5}'`) and
must be a JSON object: anything else is a usage error (exit 2) found before
any request is sent.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

from rich.text import Text

from aegis_actors._configuration.models import Configuration, is_ulid
from aegis_actors._configuration.requests import ConfigurationHistoryPage, ConfigurationPage
from aegis_actors._mgmt.client import Answer, ManagementClient
from aegis_actors._text import printable_json
from aegis_actors.cli._client import (
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
)
from aegis_actors.cli.apps import APP_HELP, application_id, checked, fields_table


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "configs",
        help="manage configurations (create, get, list, update, delete, history)",
        description="Manage configurations, the JSON objects of settings that applications "
        "own, through the aegis-mgmt service.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    options = client_options()

    create = verbs.add_parser(
        "create", parents=[options], help="create a configuration in an application"
    )
    create.add_argument("app", metavar="APP", help=APP_HELP)
    create.add_argument(
        "config_name", metavar="NAME", help="unique in APP; ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
    )
    _value_options(create, required=True)
    create.add_argument("--comments", default="", help="what it is for (0-1000 characters)")
    create.set_defaults(handler=checked(create, _create, _read_value))

    get = verbs.add_parser("get", parents=[options], help="show a configuration and its value")
    _target(get)
    get.set_defaults(handler=checked(get, _get, _check_target))

    listing = verbs.add_parser(
        "list", parents=[options], help="list configurations by name, of one application or all"
    )
    listing.add_argument("app", metavar="APP", nargs="?", default=None, help=APP_HELP)
    paging_options(listing)
    listing.set_defaults(handler=lambda args: execute(args, _list))

    update = verbs.add_parser(
        "update", parents=[options], help="change a configuration at its current revision"
    )
    _target(update)
    update.add_argument(
        "--revision", type=int, required=True, help="the revision you read (`configs get`)"
    )
    _value_options(update, required=False)
    update.add_argument("--name", dest="new_name", default=None, help="a new name, unique in APP")
    update.add_argument("--comments", default=None, help="new comments (0-1000 characters)")
    update.set_defaults(handler=checked(update, _update, _check_update))

    delete = verbs.add_parser("delete", parents=[options], help="delete a configuration")
    _target(delete)
    delete.add_argument("--revision", type=int, default=None, help="only if still at this revision")
    delete.set_defaults(handler=checked(delete, _delete, _check_target))

    history = verbs.add_parser(
        "history", parents=[options], help="the last 10 revisions of a configuration"
    )
    _target(history)
    history.set_defaults(handler=checked(history, _history, _check_target))


# -- arguments ---------------------------------------------------------------------------


def _target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        metavar="ID|APP",
        help="the configuration's id; or its application's id or name, then NAME",
    )
    parser.add_argument(
        "config_name", metavar="NAME", nargs="?", default=None, help="the configuration's name"
    )


def _value_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    value = parser.add_mutually_exclusive_group(required=required)
    value.add_argument(
        "--file", metavar="PATH", help="the value: a file holding a JSON object ('-': stdin)"
    )
    value.add_argument("--value", metavar="JSON", help="""the value inline, e.g. '{"pool": 5}'""")


def _check_target(args: argparse.Namespace) -> None:
    if args.config_name is None and not is_ulid(args.target):
        raise UsageError(
            f"{args.target!r} is not a configuration id: give an id, "
            "or an application and a configuration name (e.g. billing db)"
        )


def _check_update(args: argparse.Namespace) -> None:
    _check_target(args)
    _read_value(args)
    if args.config is None and args.new_name is None and args.comments is None:
        raise UsageError("nothing to change: give --file, --value, --name or --comments")


def _read_value(args: argparse.Namespace) -> None:
    """Parse `--file` / `--value` into `args.config` (None if neither was given)."""
    args.config = None
    if args.file is not None:
        source = "stdin" if args.file == "-" else args.file
        try:
            text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--file: cannot read {source}: {exc}") from None
    elif args.value is not None:
        source, text = "--value", args.value
    else:
        return
    args.config = parse_object(text, source)


def parse_object(text: str, source: str) -> dict[str, Any]:
    """A JSON object from `text`, or a `UsageError` saying what `source` holds instead."""
    try:
        # NaN, Infinity and 1e400 are no JSON numbers: the server refuses them too.
        value = json.loads(text, parse_constant=_not_json, parse_float=_finite)
    except ValueError as exc:
        raise UsageError(f"{source} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{source} must hold a JSON object ({{...}}), not {_kind(value)}")
    return value


def _not_json(constant: str) -> NoReturn:
    raise ValueError(f"{constant} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is beyond a double")
    return number


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    return "a number"


# -- requests ----------------------------------------------------------------------------


async def _target_params(client: ManagementClient, args: argparse.Namespace) -> dict[str, str]:
    """The `configs.get` parameters of the configuration the arguments name."""
    if args.config_name is None:
        return {"id": args.target}
    return {"applicationId": await application_id(client, args.target), "name": args.config_name}


async def _configuration_id(client: ManagementClient, args: argparse.Namespace) -> str:
    if args.config_name is None:
        return str(args.target)
    params = await _target_params(client, args)
    return str((await client.request("configs", "get", params)).data["id"])


def _show(answer: Answer, args: argparse.Namespace, title: str) -> None:
    if args.json:
        print_json(answer.raw)
        return
    config = Configuration.model_validate(answer.data)
    fields: dict[str, Any] = config.model_dump(mode="json")
    value = fields.pop("config")
    out = console()
    out.print(fields_table(title, fields, answer.revision))
    out.print(Text("config", style="bold"))
    out.print(Text(printable_json(json.dumps(value, indent=2, ensure_ascii=False))))


async def _create(client: ManagementClient, args: argparse.Namespace) -> None:
    params = {
        "applicationId": await application_id(client, args.app),
        "name": args.config_name,
        "comments": args.comments,
        "config": args.config,
    }
    answer = await client.request("configs", "create", params)
    _show(answer, args, f"created {args.config_name}")


async def _get(client: ManagementClient, args: argparse.Namespace) -> None:
    answer = await client.request("configs", "get", await _target_params(client, args))
    _show(answer, args, answer.data["name"])


async def _update(client: ManagementClient, args: argparse.Namespace) -> None:
    params: dict[str, Any] = {
        "id": await _configuration_id(client, args),
        "revision": args.revision,
    }
    for field, value in (
        ("name", args.new_name),
        ("comments", args.comments),
        ("config", args.config),
    ):
        if value is not None:
            params[field] = value
    answer = await client.request("configs", "update", params)
    _show(answer, args, f"updated {answer.data['name']}")


async def _delete(client: ManagementClient, args: argparse.Namespace) -> None:
    params: dict[str, Any] = {"id": await _configuration_id(client, args)}
    if args.revision is not None:
        params["revision"] = args.revision
    answer = await client.request("configs", "delete", params)
    if args.json:
        print_json(answer.raw)
    else:
        console().print(shown(f"deleted {args.config_name or args.target}"))


async def _history(client: ManagementClient, args: argparse.Namespace) -> None:
    answer = await client.request(
        "configs", "history", {"id": await _configuration_id(client, args)}
    )
    if args.json:
        print_json(answer.raw)
        return
    items = ConfigurationHistoryPage.model_validate(answer.data).items
    rows = table("REVISION", "UPDATED", "NAME", "CONFIG", no_wrap=("REVISION", "UPDATED", "NAME"))
    for item in items:
        config = item.configuration
        rows.add_row(
            str(item.revision),
            config.model_dump(mode="json")["updatedAt"],
            shown(config.name),
            # A value may be 64 KiB: one line, cut at the screen's edge (--json has it all).
            Text(
                printable_json(json.dumps(config.config, ensure_ascii=False)),
                no_wrap=True,
                overflow="ellipsis",
            ),
        )
    out = console()
    out.print(Text(f"{len(items)} revision{'s' if len(items) > 1 else ''}, newest first"))
    out.print(rows)


async def _list(client: ManagementClient, args: argparse.Namespace) -> None:
    params: dict[str, Any] = {}
    if args.app is not None:
        params["applicationId"] = await application_id(client, args.app)
    page = await list_pages(client, args, "configs", params, ConfigurationPage)
    if page is None:
        return
    items = page.items
    # People read application names, not ids: one listing of the applications names them.
    names: dict[str, str] = {}
    if items:
        names = {app.id: app.name async for app in client.all_applications()}
    rows = table(
        "NAME", "APPLICATION", "ID", "UPDATED", "COMMENTS",
        no_wrap=("NAME", "APPLICATION", "ID", "UPDATED"),
    )  # fmt: skip
    for config in items:
        rows.add_row(
            shown(config.name),
            shown(names.get(config.application_id, config.application_id)),
            shown(config.id),
            age(config.updated_at),
            shown(config.comments),
        )
    print_page(rows, page.next_cursor)
