"""The management API: service definitions and instances over NATS request-reply.

`models` (the wire models and their rules), `definitions` (the definitions
bucket), `listing` (the sorted index that answers `services.list`),
`instances` (reading the registry), `actor` (`ManagementService`, the
`aegis-mgmt` service serving `aegis.mgmt.*`), `client` (`ManagementClient`,
what the `aegis` CLI uses).
"""
