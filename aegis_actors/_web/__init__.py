"""The web monitor: a live dashboard of a fleet, with definition and configuration editing.

`aegis web` serves it (and `aegis run` with a `[web]` section). The process is a
NATS client of the fleet like any other: a registry watch, the management API
(`aegis.mgmt.*`) and `$SRV.INFO` / `$SRV.STATS`; it keeps nothing of its own.
Pages get changes pushed as server-sent events. `aegis_actors._web.monitor`
needs the `web` extra (aiohttp); this package's root does not.
"""

from aegis_actors._web.settings import WebSettings

__all__ = ["WebSettings"]
