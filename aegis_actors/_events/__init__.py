"""Events, core and durable (docs/guides/events.md).

`options` and `settings` say how handlers and streams are configured;
`publish` publishes; `streams` makes the streams and consumers; `consumer`
is the `events` actor of an instance tree, which pulls (`flow`) and tells
the service `messages`; `runner` runs the handlers in the service and settles
each event; `context` is what a handler reads; `dead` keeps, lists and
replays dead letters; `dedupe` the finished-events marks; `grants` what all
this takes of JetStream, as permissions.
"""
