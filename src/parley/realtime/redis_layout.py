"""Where the Redis bus keeps things: key and channel names, grouped in partitions.

Every key of one user carries the hash tag of the user's partition (`{p<N>}`), and so do the
outbox markers, the gate and the live channel of that partition. A script therefore only
ever touches keys of one partition, which a Redis Cluster requires (one slot per script).
Without a cluster there is a single partition: one script call and one published message
per event, whatever the number of recipients.

The tags are chosen so that partition `p` of `N` hashes into the `p`-th of `N` equal ranges
of the cluster's 16,384 slots (`{p5}`, or `{p5-17}` if that one hashes elsewhere): masters
that split the slots evenly, as `redis-cli --cluster create` does, get as many partitions
each as can be.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

# Encoded stream names kept per layout (then forgotten all at once and rebuilt).
_STREAM_KEYS_KEPT = 100_000


class RedisLayout:
    """Key and channel names for a number of partitions.

    `namespace` (the deployment's instance id) starts every name, so that deployments sharing
    a Redis never meet; `scope` separates them further by database number: pub/sub channels
    are global to a server (not per database).
    """

    def __init__(self, partitions: int = 1, scope: str = "0", namespace: str = "") -> None:
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        if "{" in namespace or "}" in namespace:
            raise ValueError("a namespace must not hold braces: they make hash tags")
        self.partitions = partitions
        self.scope = scope
        self._prefix = f"parley:{namespace}:" if namespace else "parley:"
        self._tags = [_tag_in_range(p, partitions) for p in range(partitions)]
        self._stream_keys: dict[int, bytes] = {}

    def partition_of(self, user_id: int) -> int:
        """The partition that holds a user's keys."""
        return user_id % self.partitions

    def by_partition(self, user_ids: Iterable[int]) -> dict[int, list[int]]:
        """Users grouped by partition, each group in the given order."""
        groups: dict[int, list[int]] = defaultdict(list)
        for user_id in user_ids:
            groups[self.partition_of(user_id)].append(user_id)
        return dict(groups)

    def _tag(self, partition: int) -> str:
        return f"{self._prefix}{{{self._tags[partition]}}}"

    def user_key(self, user_id: int, name: str) -> str:
        """A key of one user (`events`, `dropped`, `base`, `presence`)."""
        return f"{self._tag(self.partition_of(user_id))}:{name}:{user_id}"

    def stream(self, user_id: int) -> str:
        """The user's event log (a Stream)."""
        return self.user_key(user_id, "events")

    def stream_key(self, user_id: int) -> bytes:
        """`stream(user_id)` encoded, remembered for the users seen lately (every send names
        each recipient's)."""
        key = self._stream_keys.get(user_id)
        if key is None:
            if len(self._stream_keys) >= _STREAM_KEYS_KEPT:
                self._stream_keys.clear()
            key = self._stream_keys[user_id] = self.stream(user_id).encode()
        return key

    def dropped(self, user_id: int) -> str:
        """The newest id trimmed from the user's log."""
        return self.user_key(user_id, "dropped")

    def base(self, user_id: int) -> str:
        """The position given to a user whose log was empty (it precedes every entry)."""
        return self.user_key(user_id, "base")

    def presence(self, user_id: int) -> str:
        """The user's open sockets per process (a hash)."""
        return self.user_key(user_id, "presence")

    def marker_prefix(self, partition: int) -> str:
        """Prefix of the keys that say an outbox row was appended in this partition."""
        return f"{self._tag(partition)}:row:"

    def gate(self, partition: int) -> str:
        """Present while the fast path of this partition is open."""
        return f"{self._tag(partition)}:gate"

    def deferred(self, partition: int) -> str:
        """The rows the closed gate turned away, until the relay appends them (a set)."""
        return f"{self._tag(partition)}:deferred"

    def processes(self, partition: int) -> str:
        """The live processes and the time their lease ends (a hash), for presence."""
        return f"{self._tag(partition)}:processes"

    def epoch(self, partition: int) -> str:
        """Present as long as the partition's data was never lost."""
        return f"{self._tag(partition)}:epoch"

    def server(self, partition: int) -> str:
        """The server (its run id) on which the relay last confirmed the partition's log."""
        return f"{self._tag(partition)}:server"

    def send_claim(self, key: str) -> str:
        """The claim on sending one job row to the broker (spread over the partitions)."""
        partition = zlib.crc32(key.encode()) % self.partitions
        return f"{self._tag(partition)}:send:{key}"

    def channel(self, partition: int) -> str:
        """The live channel of a partition."""
        return f"{self._tag(partition)}:live:{self.scope}"

    def channels(self) -> list[str]:
        """Every live channel; each process subscribes to all of them."""
        return [self.channel(p) for p in range(self.partitions)]

    def partition_of_channel(self, channel: str) -> int | None:
        """The partition of a live channel name; None for any other name."""
        for p in range(self.partitions):
            if channel == self.channel(p):
                return p
        return None


def _tag_in_range(partition: int, partitions: int) -> str:
    """The first of `p<N>`, `p<N>-0`, `p<N>-1`, ... whose slot is in the partition's range."""
    first = partition * REDIS_CLUSTER_HASH_SLOTS // partitions
    last = (partition + 1) * REDIS_CLUSTER_HASH_SLOTS // partitions - 1
    tag = f"p{partition}"
    suffix = 0
    while not first <= key_slot(tag.encode()) <= last:
        tag = f"p{partition}-{suffix}"
        suffix += 1
    return tag
