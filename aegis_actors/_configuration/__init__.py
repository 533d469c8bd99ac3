"""The configuration service: applications and their configurations (docs/guides/configuration.md).

`models` (the wire shapes and rules), `store` (the `aegis-config` bucket, with
name uniqueness under races), `live` (a service bound to a configuration sees
every change while running).
"""
