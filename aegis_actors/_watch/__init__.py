"""Watching KV keys: a `KVWatchActor` tells subscriber actors what changed.

`actor` holds the actor (and `watch_child`, its child spec); `messages` what
it tells and answers; `key_watch` the one JetStream watch it runs.
"""

from aegis_actors._watch.actor import KVWatchActor, watch_child
from aegis_actors._watch.messages import (
    GetWatchStatistics,
    KeyChanged,
    KeyRemoved,
    Removal,
    Subscribe,
    Unsubscribe,
    WatchState,
    WatchStatistics,
    WatchSynced,
    WatchTopic,
)

__all__ = [
    "GetWatchStatistics",
    "KVWatchActor",
    "KeyChanged",
    "KeyRemoved",
    "Removal",
    "Subscribe",
    "Unsubscribe",
    "WatchState",
    "WatchStatistics",
    "WatchSynced",
    "WatchTopic",
    "watch_child",
]
