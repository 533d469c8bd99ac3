"""Secured servers for tests: roles with passwords and NKeys, and an operator-mode (JWT) server."""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import nkeys
from nats.aio.client import Client as NatsClient

from aegis_actors._denials import Violation, denials_of

_LIMITS: dict[str, Any] = {
    "subs": -1, "conn": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
    "wildcards": True, "leaf": -1,
}  # fmt: skip


def secret(user: str) -> str:
    """The test password of `user`: distinctive, so a scan of any output can find it."""
    return f"S3cret-{user}-Xq9"


def nkey_seed(folder: Path, name: str) -> tuple[Path, str]:
    """A user NKey seed file in `folder` and its public key."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    path = folder / f"{name}.nk"
    path.write_bytes(seed + b"\n")
    path.chmod(0o600)
    return path, nkeys.from_seed(seed).public_key.decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _key(prefix: int) -> tuple[bytes, Any]:
    seed = nkeys.encode_seed(os.urandom(32), prefix)
    return seed, nkeys.from_seed(seed)


def _jwt(issuer: Any, subject: str, name: str, claims: dict[str, Any]) -> str:
    """A NATS JWT signed by `issuer` (what `nsc` writes, made by hand)."""
    body = {
        "jti": _b64(os.urandom(16)),
        "iat": int(time.time()),
        "iss": issuer.public_key.decode(),
        "name": name,
        "sub": subject,
        "nats": {**claims, "version": 2},
    }
    head = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    payload = _b64(json.dumps(body).encode())
    signature = issuer.sign(f"{head}.{payload}".encode())
    return f"{head}.{payload}.{_b64(signature)}"


@dataclass(frozen=True)
class OperatorMode:
    """An operator, a system account and one account with one user in a `.creds` file."""

    server_config: str
    creds: Path
    user_public_key: str


def operator_mode(folder: Path, *, publish: list[str]) -> OperatorMode:
    """Operator-mode config (memory resolver) and a user allowed to publish `publish`."""
    _, operator = _key(nkeys.PREFIX_BYTE_OPERATOR)
    _, account = _key(nkeys.PREFIX_BYTE_ACCOUNT)
    _, system = _key(nkeys.PREFIX_BYTE_ACCOUNT)
    user_seed, user = _key(nkeys.PREFIX_BYTE_USER)
    op_pub, acc_pub, sys_pub = (k.public_key.decode() for k in (operator, account, system))
    user_pub = user.public_key.decode()
    operator_jwt = _jwt(operator, op_pub, "aegis-test", {"type": "operator"})
    account_jwt = _jwt(operator, acc_pub, "fleet", {"type": "account", "limits": _LIMITS})
    system_jwt = _jwt(operator, sys_pub, "SYS", {"type": "account", "limits": _LIMITS})
    user_jwt = _jwt(
        account,
        user_pub,
        "cli",
        {"type": "user", "pub": {"allow": publish}, "sub": {}, "subs": -1, "data": -1,
         "payload": -1},
    )  # fmt: skip
    creds = folder / "cli.creds"
    creds.write_text(
        f"-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{user_seed.decode()}\n------END USER NKEY SEED------\n"
    )
    creds.chmod(0o600)
    config = (
        f'operator: "{operator_jwt}"\nsystem_account: {sys_pub}\nresolver: MEMORY\n'
        f'resolver_preload: {{ {acc_pub}: "{account_jwt}", {sys_pub}: "{system_jwt}" }}\n'
    )
    return OperatorMode(config, creds, user_pub)


class Refusals:
    """The violations the server reports to one connection, to wait on (no sleeps)."""

    def __init__(self, client: NatsClient) -> None:
        denials = denials_of(client)
        assert denials is not None, "connect with aegis_actors._connection.connect()"
        self.seen: list[Violation] = []
        self._changed = anyio.Event()
        denials.listen(self._on)

    def _on(self, violation: Violation) -> bool:
        self.seen.append(violation)
        self._changed.set()
        return True

    async def wait_for(self, operation: str, subject: str, timeout: float = 5.0) -> Violation:
        """The refusal of `operation` on `subject` (compared without case, as nats-py reports)."""
        with anyio.fail_after(timeout):
            while True:
                for violation in self.seen:
                    if (violation.operation, violation.subject) == (operation, subject.lower()):
                        return violation
                self._changed = anyio.Event()
                await self._changed.wait()
