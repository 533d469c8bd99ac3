"""`aegis events`: durable events' consumers, resets and dead letters (docs/guides/events.md).

```
aegis events consumers [--service S]                     consumers, pending, redelivered
aegis events reset SERVICE [--handler H] --start|--sequence N|--time T
aegis events dead list [--service S] [--after SEQ] [--limit N]
aegis events dead replay SEQ... | --all [--service S]    hand back to the service, then drop
aegis events dead drop SEQ... | --all [--service S]
```
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from aegis_actors._buckets import Buckets
from aegis_actors._errors import ErrorCode, ServiceError, StoreError
from aegis_actors._events.dead import DeadLetter, DeadLetters
from aegis_actors._events.streams import stream_names
from aegis_actors._mgmt.client import ManagementClient
from aegis_actors._subjects import JS_API, Subjects
from aegis_actors._transport import NATS_ERRORS, NatsClient
from aegis_actors.cli._client import (
    EXIT_USAGE,
    age,
    client_options,
    console,
    execute,
    integer,
    print_json,
    table,
)

_PAGE = 100


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "events",
        help="durable events: consumers, resets, dead letters",
        description="Durable events: their consumers, replays and dead letters.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    options = client_options()

    consumers = verbs.add_parser(
        "consumers", parents=[options], help="list the consumers of durable handlers"
    )
    consumers.add_argument("--service", default=None, help="only this service's consumers")
    consumers.set_defaults(handler=lambda args: _run(args, _consumers))

    reset = verbs.add_parser(
        "reset",
        parents=[options],
        help="move a service's consumers back (or forward) in their streams",
        description="Move the consumers of a service's durable handlers to another point of "
        "their streams: its handlers see the events from there again (the instances may run).",
    )
    reset.add_argument("service", metavar="SERVICE")
    reset.add_argument(
        "--handler", dest="handler_name", default=None, help="only this handler's consumer"
    )
    where = reset.add_mutually_exclusive_group(required=True)
    where.add_argument("--start", action="store_true", help="from the first event kept")
    where.add_argument(
        "--sequence", type=integer(1, 2**63), default=None, help="from this stream sequence"
    )
    where.add_argument(
        "--time", type=_time, default=None, help="from this time (ISO 8601, e.g. 2026-11-30T08:00Z)"
    )
    reset.set_defaults(handler=lambda args: _run(args, _reset))

    dead = verbs.add_parser(
        "dead", help="dead letters: list, replay, drop", description="Events handlers gave up on."
    )
    dead_verbs = dead.add_subparsers(dest="dead_verb", metavar="VERB", required=True)
    listing = dead_verbs.add_parser("list", parents=[options], help="list dead letters")
    listing.add_argument("--service", default=None, help="only this service's")
    listing.add_argument("--after", type=integer(0, 2**63), default=0, help="after this one")
    listing.add_argument(
        "--limit", type=integer(1, 10_000), default=_PAGE, help="at most this many"
    )
    listing.set_defaults(handler=lambda args: _run(args, _dead_list))
    for verb, helptext in (
        ("replay", "hand dead letters back to their service; drop those it handled"),
        ("drop", "delete dead letters"),
    ):
        command = dead_verbs.add_parser(verb, parents=[options], help=helptext)
        command.add_argument("sequences", metavar="SEQ", nargs="*", type=integer(1, 2**63))
        command.add_argument("--all", action="store_true", help="every dead letter (of --service)")
        command.add_argument("--service", default=None, help="with --all: only this service's")
        action = _dead_replay if verb == "replay" else _dead_drop
        command.set_defaults(handler=lambda args, action=action: _run(args, action))


def _time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _run(args: argparse.Namespace, action: Any) -> int:
    async def wrapped(client: ManagementClient, args: argparse.Namespace) -> None:
        try:
            await action(client.client, args)
        except (StoreError, *NATS_ERRORS, TimeoutError) as exc:
            raise ServiceError.of(
                ErrorCode.SERVICE_UNAVAILABLE, f"JetStream: {exc or exc!r}"
            ) from exc

    if hasattr(args, "sequences") and args.all == bool(args.sequences):
        print(f"aegis events dead {args.dead_verb}: error: give dead letter sequences, or --all "
              "(not both)", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    return execute(args, wrapped)


# -- consumers and resets -------------------------------------------------------------


async def _service_consumers(
    client: NatsClient, args: argparse.Namespace, service: str | None, handler: str | None
) -> list[tuple[str, Any]]:
    """(stream, consumer info) of the shared consumers of `service` (all: None)."""
    js = client.jetstream(timeout=args.timeout)
    found = []
    streams = stream_names(await js.streams_info(), Subjects(args.namespace))
    for stream in streams:
        for info in await js.consumers_info(stream):
            name = info.name or ""
            owner, _, own_handler = name.partition("_")
            if service is not None and owner != service:
                continue
            if handler is not None and own_handler != handler:
                continue
            found.append((stream, info))
    return found


async def _consumers(client: NatsClient, args: argparse.Namespace) -> None:
    found = await _service_consumers(client, args, args.service, None)
    rows = [
        {
            "stream": stream,
            "consumer": info.name,
            "filter": info.config.filter_subject,
            "pending": info.num_pending or 0,
            "ackPending": info.num_ack_pending or 0,
            "redelivered": info.num_redelivered or 0,
            "ackFloor": info.ack_floor.stream_seq if info.ack_floor else 0,
        }
        for stream, info in found
    ]
    if args.json:
        print_json({"ok": True, "status": 200, "data": {"items": rows}})
        return
    out = table(
        "STREAM", "CONSUMER", "FILTER", "PENDING", "ACK PENDING", "REDELIVERED", "ACK FLOOR",
        no_wrap=("STREAM", "CONSUMER", "FILTER"),
    )  # fmt: skip
    for row in rows:
        out.add_row(*(Text(str(value)) for value in row.values()))
    console().print(out)


async def _first_at(client: NatsClient, stream: str, moment: datetime, timeout: float) -> int:
    """The sequence of the first event stored at or after `moment` (or the next one to come)."""
    request = {"start_time": moment.astimezone(UTC).isoformat().replace("+00:00", "Z")}
    reply = await client.request(
        f"{JS_API}.STREAM.MSG.GET.{stream}", json.dumps(request).encode(), timeout=timeout
    )
    answer = json.loads(reply.data)
    if "message" in answer:
        return int(answer["message"]["seq"])
    js = client.jetstream(timeout=timeout)
    return int((await js.stream_info(stream)).state.last_seq) + 1


async def _reset(client: NatsClient, args: argparse.Namespace) -> None:
    found = await _service_consumers(client, args, args.service, args.handler_name)
    if not found:
        what = f"handler {args.handler_name!r} of " if args.handler_name else ""
        raise ServiceError.of(
            ErrorCode.NOT_FOUND, f"no consumer of {what}{args.service!r} in this namespace"
        )
    js = client.jetstream(timeout=args.timeout)
    done = []
    for stream, info in found:
        if args.start:
            sequence = max(1, int((await js.stream_info(stream)).state.first_seq))
        elif args.time is not None:
            sequence = await _first_at(client, stream, args.time, args.timeout)
        else:
            sequence = args.sequence
        try:
            await js.reset_consumer(stream, info.name, sequence)
        except NATS_ERRORS as exc:
            raise ServiceError.of(
                ErrorCode.BAD_REQUEST,
                f"cannot reset {info.name} on {stream}: {exc} (a consumer made with "
                "deliver='new' or 'last' cannot go back before where it started)",
            ) from exc
        done.append({"stream": stream, "consumer": info.name, "sequence": sequence})
    if args.json:
        print_json({"ok": True, "status": 200, "data": {"items": done}})
        return
    for row in done:
        console().print(
            Text(f"{row['consumer']} on {row['stream']}: from sequence {row['sequence']}")
        )


# -- dead letters ---------------------------------------------------------------------


async def _dead_list(client: NatsClient, args: argparse.Namespace) -> None:
    letters = DeadLetters(client, namespace=args.namespace, timeout=args.timeout)
    found = await letters.list(service=args.service, after=args.after, limit=args.limit)
    if args.json:
        items = [letter.to_dict() for letter in found]
        print_json({"ok": True, "status": 200, "data": {"items": items}})
        return
    out = table(
        "SEQ", "AGE", "SERVICE", "HANDLER", "SUBJECT", "DELIVERIES", "ERROR",
        no_wrap=("SEQ", "AGE", "SERVICE", "HANDLER", "DELIVERIES"),
    )  # fmt: skip
    for letter in found:
        out.add_row(
            str(letter.sequence),
            age(letter.time),
            Text(letter.service),
            Text(letter.handler),
            Text(letter.subject),
            str(letter.deliveries),
            Text(letter.error),
        )
    console().print(out)
    if len(found) == args.limit:
        console().print(Text(f"more: add --after {found[-1].sequence}"))
    elif not found:
        console().print(Text(f"no dead letters in {Buckets(args.namespace).dead_letters}"))


async def _chosen(letters: DeadLetters, args: argparse.Namespace) -> list[DeadLetter]:
    if args.all:
        chosen: list[DeadLetter] = []
        while True:
            after = chosen[-1].sequence if chosen else 0
            page = await letters.list(service=args.service, after=after, limit=_PAGE)
            chosen += page
            if len(page) < _PAGE:
                return chosen
    chosen = []
    for sequence in args.sequences:
        letter = await letters.get(sequence)
        if letter is None:
            raise ServiceError.of(ErrorCode.NOT_FOUND, f"no dead letter {sequence}")
        chosen.append(letter)
    return chosen


async def _dead_replay(client: NatsClient, args: argparse.Namespace) -> None:
    letters = DeadLetters(client, namespace=args.namespace, timeout=args.timeout)
    outcomes = []
    failed = None
    for letter in await _chosen(letters, args):
        try:
            await letters.replay(letter)
        except ServiceError as exc:
            failed = failed or exc
            outcomes.append({"sequence": letter.sequence, "replayed": False, "error": exc.message})
        else:
            outcomes.append({"sequence": letter.sequence, "replayed": True, "error": None})
    if args.json:
        print_json({"ok": failed is None, "status": 200, "data": {"items": outcomes}})
    else:
        for outcome in outcomes:
            what = "handled, dropped" if outcome["replayed"] else f"failed: {outcome['error']}"
            console().print(Text(f"dead letter {outcome['sequence']}: {what}"))
    if failed is not None and not args.json:
        raise ServiceError(
            failed.status, failed.code, f"{sum(not o['replayed'] for o in outcomes)} not replayed"
        )


async def _dead_drop(client: NatsClient, args: argparse.Namespace) -> None:
    letters = DeadLetters(client, namespace=args.namespace, timeout=args.timeout)
    dropped = [
        letter.sequence
        for letter in await _chosen(letters, args)
        if await letters.drop(letter.sequence)
    ]
    if args.json:
        print_json({"ok": True, "status": 200, "data": {"dropped": dropped}})
        return
    console().print(Text(f"dropped {len(dropped)} dead letter{'s' if len(dropped) != 1 else ''}"))
