"""`WebSettings`: where the web monitor listens (`aegis web` options, a fleet file's `[web]`).

Plain pydantic, no web framework imported: a config file with `[web]` is
validated even where the `web` extra is not installed.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_HOST: Final = "127.0.0.1"
#: Not 8222: that is nats-server's own monitoring port.
DEFAULT_PORT: Final = 8090
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})


class WebSettings(BaseModel):
    """Section `[web]`: serve the web monitor from this process too."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(
        DEFAULT_HOST,
        min_length=1,
        description="Address to listen on; loopback by default (the monitor has no login "
        "of its own: put it behind an authenticating proxy before binding it elsewhere).",
    )
    port: int = Field(DEFAULT_PORT, ge=0, le=65535, description="HTTP port; 0 picks a free one.")
    stats_interval: float = Field(
        2.0,
        gt=0,
        le=60,
        description="Seconds between two `$SRV.STATS` samples of the fleet, taken only while "
        "a page is open.",
    )

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS or self.host.startswith("127.")
