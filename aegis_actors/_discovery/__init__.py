"""Discovery and calls: finding the instances of a service and calling one of them.

`settings` (what a config file says), `snapshot` (the immutable views callers
read), `cache` (the actor that writes them, fed by a `KVWatchActor` or by
reads of the registry), `strategies` (picking an instance), `caller` (`call()`
with retries and failover), `tree` (wiring them into an actor tree). The
public names are re-exported by `aegis_actors`.
"""
