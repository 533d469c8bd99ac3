"""Centralised configuration (SPEC section 10): applications and their configurations.

`models` (the wire shapes and rules), `store` (the `aegis-config` bucket, with
name uniqueness under races), `live` (a service bound to a configuration sees
every change while running).
"""
