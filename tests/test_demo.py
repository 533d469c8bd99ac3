"""The showcase tour (`make demo`) runs to completion and shows what it says."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

pytestmark = pytest.mark.nats

ROOT = Path(__file__).parent.parent


async def test_the_tour_runs_to_completion() -> None:
    command = [sys.executable, "-m", "services.trading.demo"]
    with anyio.fail_after(120):
        result = await anyio.run_process(command, cwd=ROOT, check=False, env=None)
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    assert "web monitor: http://127.0.0.1:" in out
    assert "created order-service" in out
    # The whole CRUD of a definition, with the stale update refused.
    assert "create  audit-service: 201, revision 4" in out
    assert "get     audit-service: owner compliance, version 1.0.0, revision 4" in out
    assert "update  audit-service at revision 4: version 1.1.0, revision 5" in out
    assert "update  audit-service at revision 4 again: 409 REVISION_CONFLICT, it is at 5" in out
    assert "delete  audit-service at revision 5: 204; get: 404" in out
    assert "20/20 calls succeeded right after the kill" in out
    # Positions are rebuilt from the order stream after every risk instance restarted.
    assert "started again: both rebuilt the same 4 positions" in " ".join(out.split())
    assert "placed 26 orders (25 accepted, 1 rejected by risk):" in out
    assert "6 one by one, then 20 right after an instance was killed" in out
    # The last act: config/secure.toml, roles enforced by the server.
    assert "viewer   services.delete: 403 PERMISSION_DENIED" in out
    assert "order-service registers as pricing-service: refused by the server" in out
