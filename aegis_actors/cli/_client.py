"""What the client commands share: options and their types, running a request, output.

Exit codes: 0 success; 1 the request failed (an error reply, no `aegis-mgmt`
answering, no answer in time), with the error's message on stderr; 2 bad
command-line usage (argparse); 3 NATS could not be reached (or refused the
credentials); 4 the server's permissions refuse these credentials the
subject (403 PERMISSION_DENIED).

Every command connects as `aegis run` does: the same `AEGIS_NATS_*`
variables (`connection.NATS_ENV`), each with its option, into one
`ConnectionSettings`, which `connection.connect` alone turns into a connection.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final, TypeVar

from nats.aio.client import Client as NatsClient
from pydantic import ValidationError
from pydantic_core import to_json
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from aegis_actors._configuration.requests import ApplicationPage, ConfigurationPage
from aegis_actors._connection import NATS_ENV, ConnectionSettings, connect, redact, split_urls
from aegis_actors._errors import ErrorCode, NatsUnavailableError, ServiceError
from aegis_actors._eventloop import run
from aegis_actors._mgmt.client import DEFAULT_TIMEOUT, ManagementClient
from aegis_actors._mgmt.models import ServicePage
from aegis_actors._models import format_timestamp, utc_now
from aegis_actors._pagination import DEFAULT_PAGE, MAX_PAGE
from aegis_actors._subjects import check_namespace
from aegis_actors._text import printable, printable_json

URL_ENV: Final = "AEGIS_NATS_URL"
NAMESPACE_ENV: Final = "AEGIS_NAMESPACE"
DEFAULT_URL: Final = "nats://127.0.0.1:4222"
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_NO_NATS: Final = 3
EXIT_DENIED: Final = 4

#: The credential and TLS options: flag, `ConnectionSettings` field, help. Each
#: defaults to its `AEGIS_NATS_*` variable (`NATS_ENV`), as in `aegis run`.
CONNECTION_OPTIONS: Final = (
    ("--user", "user", "user name"),
    ("--password", "password", "password of --user (a variable is safer: arguments show in ps)"),
    ("--token", "token", "authentication token (a variable is safer)"),
    ("--creds", "creds_file", "NATS credentials file (user JWT and NKey seed)"),
    ("--nkey", "nkey_seed", "file holding an NKey seed (SU...)"),
    ("--inbox-prefix", "inbox_prefix", "reply subject prefix (default _INBOX.{user or key})"),
    ("--ca", "tls.ca_file", "CA bundle that signs the server certificates"),
    ("--cert", "tls.cert_file", "client certificate (mutual TLS)"),
    ("--key", "tls.key_file", "private key of --cert"),
)
_VARIABLE: Final = {field: variable for variable, field in NATS_ENV.items()}

Action = Callable[[ManagementClient, argparse.Namespace], Awaitable[None]]
PageT = TypeVar("PageT", ServicePage, ApplicationPage, ConfigurationPage)


def client_options() -> argparse.ArgumentParser:
    """The options of every management command (a parent parser)."""
    options = argparse.ArgumentParser(add_help=False)
    # Defaults from the environment go through `type=` as well (argparse converts a
    # string default), so a bad variable is a usage error naming the option too.
    options.add_argument(
        "--url",
        type=nats_urls,
        default=os.environ.get(URL_ENV) or DEFAULT_URL,
        help=f"NATS server URL, comma-separated for a cluster (default: ${URL_ENV}, "
        f"else {DEFAULT_URL})",
    )
    options.add_argument(
        "--namespace",
        type=namespace,
        default=os.environ.get(NAMESPACE_ENV, ""),
        help=f"the fleet's namespace, if any (default: ${NAMESPACE_ENV})",
    )
    options.add_argument(
        "--timeout",
        type=seconds,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait for NATS and for the answer (default {DEFAULT_TIMEOUT:g})",
    )
    options.add_argument(
        "--json", action="store_true", help="print the reply as JSON (for scripts)"
    )
    credentials = options.add_argument_group("credentials and TLS")
    for flag, field, text in CONNECTION_OPTIONS:
        variable = _VARIABLE[field]
        credentials.add_argument(
            flag,
            dest=_dest(field),
            default=os.environ.get(variable) or None,
            metavar=flag.removeprefix("--").split("-")[0].upper(),
            help=f"{text} (default: ${variable})",
        )
    # A client prints answers: "nats connected" lines would be noise (--log-level info shows them).
    options.set_defaults(log_level_default="warning")
    return options


def paging_options(listing: argparse.ArgumentParser) -> None:
    """`--limit`, `--cursor` and `--all` of a `list` verb (see `list_pages`)."""
    listing.add_argument(
        "--limit",
        type=integer(1, MAX_PAGE),
        default=None,
        help=f"per page, 1-{MAX_PAGE} (default {DEFAULT_PAGE})",
    )
    listing.add_argument("--cursor", default=None, help="the `nextCursor` of the previous page")
    listing.add_argument("--all", action="store_true", help="follow the cursor to the last page")


# -- option types: a bad value is an argparse usage error (exit 2) naming the option ------


def seconds(text: str) -> float:
    """A duration in seconds: a finite number greater than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, not {text}")
    return value


def integer(low: int, high: int) -> Callable[[str], int]:
    """An integer from `low` to `high` (both included)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, not {value}")
        return value

    return parse


def namespace(text: str) -> str:
    """A fleet's namespace, checked by the rule subjects are built with."""
    try:
        return check_namespace(text)
    except ValueError as exc:
        origin = f" (from ${NAMESPACE_ENV})" if text == os.environ.get(NAMESPACE_ENV) else ""
        raise argparse.ArgumentTypeError(f"{exc}{origin}") from None


def nats_urls(text: str) -> list[str]:
    """One URL, or comma-separated URLs of one cluster; blanks are dropped."""
    urls = split_urls(text)
    if not urls:
        origin = f" (from ${URL_ENV})" if text == os.environ.get(URL_ENV) else ""
        raise argparse.ArgumentTypeError(f"no URL in {text!r}{origin}")
    return urls


def _dest(field: str) -> str:
    return "nats_" + field.replace(".", "_")


def connection_settings(args: argparse.Namespace) -> ConnectionSettings:
    """Where `--url` points (one URL, or several of a cluster), tried for `--timeout`,
    as whom (the credential and TLS options).

    Raises:
        UsageError: options that do not go together (e.g. --user and --token).
    """
    data: dict[str, Any] = {
        "url": args.url,  # a list from `nats_urls`; one URL becomes a string there
        "initial_connect_timeout": args.timeout,
        "connect_timeout": min(args.timeout, 2.0),
    }
    tls: dict[str, Any] = {}
    for _, field, _ in CONNECTION_OPTIONS:
        value = getattr(args, _dest(field), None)
        if value is None:
            continue
        if field.startswith("tls."):
            tls[field.removeprefix("tls.")] = value
        else:
            data[field] = value
    if tls:
        data["tls"] = tls
    try:
        return ConnectionSettings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise UsageError(redact(f"connection options: {problems}")) from None


def exit_code(error: ServiceError) -> int:
    """EXIT_DENIED for PERMISSION_DENIED, else EXIT_FAILED."""
    return EXIT_DENIED if error.code == ErrorCode.PERMISSION_DENIED else EXIT_FAILED


def settings_or_exit(args: argparse.Namespace) -> ConnectionSettings | int:
    """The connection settings the options say, or EXIT_USAGE after saying why not."""
    try:
        return connection_settings(args)
    except UsageError as exc:
        print(f"aegis: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


async def connect_or_report(args: argparse.Namespace) -> NatsClient | int:
    """A connection as the options say, or the exit code after saying why not."""
    settings = settings_or_exit(args)
    if isinstance(settings, int):
        return settings
    try:
        return await connect(settings)
    except NatsUnavailableError as exc:
        print(f"aegis: {exc}", file=sys.stderr)
        return EXIT_NO_NATS


def execute(args: argparse.Namespace, action: Action) -> int:
    """Connect, run `action`, report a failure; return the exit code."""

    async def main() -> int:
        client = await connect_or_report(args)
        if isinstance(client, int):
            return client
        try:
            await action(
                ManagementClient(client, namespace=args.namespace, timeout=args.timeout), args
            )
        except ServiceError as exc:
            report_error(args, exc)
            return exit_code(exc)
        finally:
            await client.close()
        return 0

    return run(main)


class UsageError(Exception):
    """Command-line arguments that argparse cannot check alone (exit 2, as its own errors)."""


def usage_error(parser: argparse.ArgumentParser, error: UsageError) -> int:
    """Report `error` the way argparse reports its own; return the exit code (2)."""
    print(parser.format_usage().rstrip(), file=sys.stderr)
    print(f"{parser.prog}: error: {error}", file=sys.stderr)
    return EXIT_USAGE


def report_error(args: argparse.Namespace, error: ServiceError) -> None:
    """The error envelope on stdout with --json; else its message (and details) on stderr."""
    if args.json:
        envelope = {"ok": False, "status": error.status, "error": error.to_dict()}
        print(to_json(envelope).decode())
        return
    # The message may quote what another client stored: escaped, like every output.
    print(f"aegis: {error.status} {error.code}: {printable(error.message)}", file=sys.stderr)
    if "field" in error.details:
        field = printable(str(error.details["field"]))
        print(f"  field: {field}, value: {error.details.get('value')!r}", file=sys.stderr)


def console() -> Console:
    """Rich output to the current stdout (which tests may have replaced)."""
    return Console(file=sys.stdout, highlight=False)


def shown(value: object, **style: Any) -> Text:
    """A value from the fleet as a cell: never read as markup, escaped where a terminal would act.

    Data stored before the text rules, or written straight into KV by another
    client, may hold ESC sequences, CR or bidi overrides (docs/reference/cli.md).
    """
    return Text(printable(str(value)), **style)


def table(*columns: str, no_wrap: tuple[str, ...] = ()) -> Table:
    """A table with light rules (more room for data in 80 columns than boxes).

    Columns in `no_wrap` are never wrapped or cut: names and ids are what people copy.
    """
    result = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        result.add_column(column, no_wrap=column in no_wrap)
    return result


def print_json(raw: bytes | Any) -> None:
    """Print a reply as received (bytes) or a value as JSON, what a terminal acts on escaped."""
    data = raw if isinstance(raw, bytes) else to_json(raw, by_alias=True)
    print(printable_json(data.decode(errors="backslashreplace")))


def age(moment: datetime) -> str:
    """How long ago, for people: `4s ago`, `3m ago`, `2h ago`, or the timestamp."""
    seconds = (utc_now() - moment).total_seconds()
    if seconds < 0:
        return format_timestamp(moment)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    if seconds < 172_800:
        return f"{seconds / 3600:.0f}h ago"
    return format_timestamp(moment)


async def list_pages(
    client: ManagementClient,
    args: argparse.Namespace,
    resource: str,
    params: dict[str, Any],
    page_type: type[PageT],
) -> PageT | None:
    """`{resource}.list` with the options of `paging_options`.

    With `--all` it follows the cursor and returns every item as one page.
    With `--json` it prints the reply (with `--all`, one reply holding every
    item, so a script reads one shape) and returns None: nothing left to show.
    """
    if args.limit is not None:
        params["limit"] = args.limit
    if args.cursor is not None:
        params["cursor"] = args.cursor
    answer = await client.request(resource, "list", params)
    page = page_type.model_validate(answer.data)
    if args.all:
        items = list(page.items)
        while page.next_cursor is not None:
            more = await client.request(resource, "list", {**params, "cursor": page.next_cursor})
            page = page_type.model_validate(more.data)
            items += page.items
        page = page_type(items=items, next_cursor=None)
    if args.json:
        print_json(answer.raw if not args.all else {"ok": True, "status": 200, "data": page})
        return None
    return page


def print_page(rows: Table, next_cursor: str | None) -> None:
    """A listing's table, then how to get the next page if there is one."""
    out = console()
    out.print(rows)
    if next_cursor is not None:
        out.print(shown(f"more: add --cursor {next_cursor}, or --all"))
