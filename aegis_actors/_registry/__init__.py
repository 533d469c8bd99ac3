"""The service registry: instance records in KV with per-key TTL, kept alive by heartbeats.

`models` (what an instance writes), `store` (reading the bucket), `heartbeat`
(the actor that writes). The public names are re-exported by `aegis_actors`.
"""
