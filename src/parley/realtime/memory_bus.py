"""The embedded bus: event log and fan-out in this process's memory."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from parley.ops.metrics import EVENTS_PUBLISHED
from parley.realtime.bus import Bus, ReplayUnavailable
from parley.realtime.codec import Frame, encode_body, parse_event_id, with_id, without_id


@dataclass
class _UserLog:
    entries: deque[tuple[tuple[int, int], float, Frame]] = field(default_factory=deque)
    # The newest id dropped by trimming: a client behind it cannot be replayed to.
    max_dropped: tuple[int, int] = (0, 0)


class MemoryBus(Bus):
    """Per-user logs capped by length and age; ids are `<ms>-<seq>` like Redis Streams."""

    def __init__(self, *, max_events: int, max_age_seconds: float) -> None:
        super().__init__()
        self._max_events = max_events
        self._max_age = max_age_seconds
        self._logs: dict[int, _UserLog] = {}
        self._last_id = (0, 0)
        # Ids from before this process started cannot be replayed.
        self._started = (int(time.time() * 1000), 0)

    async def ping(self) -> None:
        """Always available."""

    def _next_id(self) -> tuple[int, int]:
        ms = int(time.time() * 1000)
        last_ms, last_seq = self._last_id
        self._last_id = (ms, 0) if ms > last_ms else (last_ms, last_seq + 1)
        return self._last_id

    async def publish(
        self, user_ids: Iterable[int], event_type: str, data: Mapping[str, Any]
    ) -> None:
        """Log the event for each user and deliver it."""
        body = encode_body(event_type, data)
        now = time.monotonic()
        users = list(dict.fromkeys(user_ids))
        EVENTS_PUBLISHED.labels(event_type).inc(len(users))
        for user_id in users:
            key = self._next_id()
            event_id = f"{key[0]}-{key[1]}"
            frame = Frame(event_id, with_id(event_id, body))
            log = self._logs.setdefault(user_id, _UserLog())
            log.entries.append((key, now, frame))
            self._trim(log, now)
            self._deliver(user_id, frame)

    def _trim(self, log: _UserLog, now: float) -> None:
        # Keep an event while it is among the newest `max_events` OR younger than `max_age`.
        while len(log.entries) > self._max_events and now - log.entries[0][1] > self._max_age:
            key, _, _ = log.entries.popleft()
            log.max_dropped = key

    async def publish_ephemeral(
        self, user_ids: Iterable[int], event_type: str, data: Mapping[str, Any]
    ) -> None:
        """Deliver without logging."""
        frame = Frame(None, without_id(encode_body(event_type, data)))
        for user_id in dict.fromkeys(user_ids):
            self._deliver(user_id, frame)

    async def replay(self, user_id: int, after_id: str) -> list[Frame]:
        """Logged events after `after_id`; ReplayUnavailable if some were dropped."""
        after = parse_event_id(after_id)
        if after is None or after < self._started:
            raise ReplayUnavailable(after_id)
        log = self._logs.get(user_id)
        if log is None:
            return []
        if after < log.max_dropped:
            raise ReplayUnavailable(after_id)
        return [frame for key, _, frame in log.entries if key > after]
