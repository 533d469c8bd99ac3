"""`aegis auth [CONFIG]`: the roles as a nats-server authorization block.

Roles admin, viewer, client, and one `service:{name}` per service of CONFIG
(its classes say which events it handles and publishes, which buckets it
owns, whether it binds a configuration) and per `--service NAME`.

Users prove who they are with a password the server reads from its
environment (`$AEGIS_PASSWORD_{USER}`: the file holds no secret), or, with
`--nkeys DIR`, with an NKey: the file then holds public keys only, and DIR
one seed file per role (made once, kept on later runs, mode 0600).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from aegis_actors._auth import (
    Credential,
    ServiceGrants,
    fleet_roles,
    grants_of,
    password_variable,
    render,
)
from aegis_actors._config_file import load_config
from aegis_actors._connection import nkey_public_key
from aegis_actors._errors import ConfigError
from aegis_actors._subjects import check_service_name
from aegis_actors.cli._client import EXIT_USAGE, namespace


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "auth",
        help="write the roles (admin, viewer, client, service:NAME) as NATS permissions",
        description="Print a nats-server authorization block with the roles admin, viewer, "
        "client and one service:NAME per service of CONFIG (and of --service). Add it to "
        "the server's config, or give it to `aegis server --auth` / `[embedded] auth`. "
        "See docs/operations/securing.md.",
    )
    parser.add_argument(
        "config", nargs="?", default=None, help="a fleet's config file, e.g. config/showcase.toml"
    )
    parser.add_argument(
        "--service",
        action="append",
        default=[],
        metavar="NAME",
        help="a service role by name only (no events, buckets or configuration); repeatable",
    )
    parser.add_argument(
        "--namespace",
        type=namespace,
        default=None,
        help="the fleet's namespace (default: CONFIG's, else $AEGIS_NAMESPACE)",
    )
    parser.add_argument(
        "--nkeys",
        metavar="DIR",
        default=None,
        help="NKey users: one seed file per role in DIR (made if missing), public keys in "
        "the block; without it, passwords from the server's environment",
    )
    parser.add_argument(
        "--output", "-o", metavar="FILE", default=None, help="write the block to FILE"
    )
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    grants: list[ServiceGrants] = []
    ns = args.namespace
    try:
        if args.config is not None:
            config = load_config(args.config)
            ns = config.fleet.namespace if ns is None else ns
            for service in config.services:
                binds = service.config.configuration is not None
                grants.append(grants_of(service.cls, binds_configuration=binds))
        grants += [ServiceGrants(check_service_name(name)) for name in args.service]
        roles = fleet_roles(grants, ns or "")
        credentials: dict[str, Credential] = {}
        if args.nkeys is not None:
            folder = Path(args.nkeys)
            for role in roles:
                credentials[role.name] = Credential(nkey=nkey_user(folder / f"{role.user}.nk"))
    except (ConfigError, ValueError, OSError) as exc:
        print(f"aegis auth: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.nkeys is not None:
        told = f"NKey seeds in {args.nkeys}/ (one per role; keep them secret)"
    else:
        told = "passwords from the server's environment: " + ", ".join(
            f"${password_variable(r)}" for r in roles
        )
    text = render(roles, credentials, namespace=ns or "")
    if args.output is None:
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
    where = f"written to {args.output}" if args.output else "printed"
    names = ", ".join(role.name for role in roles)
    print(f"aegis auth: {len(roles)} roles {where} ({names}); {told}", file=sys.stderr)
    return 0


def nkey_user(path: Path) -> str:
    """The public key of the NKey seed in `path`, made (mode 0600) if missing."""
    import nkeys  # installed with nats-py[nkeys]

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(seed + b"\n")
    public = nkey_public_key(path.read_text().strip())
    if public is None:
        raise ValueError(f"{path} does not hold an NKey user seed (SU...)")
    return public
