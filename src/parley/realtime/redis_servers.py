"""Which partitions moved to another Redis server, and whether the relay has caught up.

A partition's log moves to another server when Redis restarts or a replica is promoted in
a failover; either may have lost the newest writes. The bus's scripts notice it (see
`redis_scripts`), this book keeps the consequences in order:

1. `moved` — a partition was found on a new server: the generation changes, so that the
   relay republishes the recent events (the markers skip whatever survived);
2. `republishing` — the relay asks whether Redis kept its data, right before it
   republishes: every partition found so far is now covered by that republication;
3. `reopened` — the relay opened the partition's fast path on that server.

The fast path of a partition may only open on the server the relay republished for, and
the relay must republish before it relays anything newer: `must_republish` says so.
"""

from __future__ import annotations


class ServerBook:
    """See the module docstring."""

    def __init__(self) -> None:
        self.generation = 0
        # partition -> the server it was found on, before / since the relay's republication
        self._found: dict[int, str | None] = {}
        self._covered: dict[int, str | None] = {}
        # partition -> the server the relay last saw it on (its gate script's answer)
        self.seen: dict[int, str] = {}

    def moved(self, partitions: dict[int, str | None]) -> list[int]:
        """Record partitions found on another server (None: not known which); returns the
        ones that are news, for which the generation changed."""
        news = [p for p, server in partitions.items() if not self._knows(p, server)]
        for partition in news:
            self._found[partition] = partitions[partition]
        if news:
            self.generation += 1
        return news

    def _knows(self, partition: int, server: str | None) -> bool:
        """Whether the partition's move to `server` (None: to some server) is known."""
        known = [book[partition] for book in (self._found, self._covered) if partition in book]
        return bool(known) and (server is None or server in known)

    def must_republish(self, partitions: set[int]) -> bool:
        """Whether one of `partitions` was found moved and not yet republished for."""
        return any(p in self._found for p in partitions)

    def republishing(self) -> None:
        """The relay is about to republish: it covers every partition found so far."""
        self._covered.update(self._found)
        self._found.clear()

    def may_reopen(self, partition: int) -> bool:
        """Whether the relay may open the partition's fast path (it republished for it)."""
        return partition not in self._found

    def reopened(self, partition: int) -> None:
        """The partition's fast path is open on the server the relay saw it on."""
        self._covered.pop(partition, None)
