"""Sticky single-active services: one ACTIVE instance per group (docs/guides/sticky-active.md).

`models` (the settings, the key's value, what the service is told), `actor`
(the `LeadershipActor` that takes, renews and releases the key), `tree` (its
place in the instance tree). The public names are re-exported by `aegis_actors`.
"""
