"""The embedded bus: event logs and fan-out in this process's memory."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from parley.ops.metrics import EVENTS_PUBLISHED
from parley.realtime.bus import Appended, Bus, LogEvent, Position, ReplayUnavailable
from parley.realtime.codec import (
    Frame,
    encode_body,
    format_event_id,
    parse_event_id,
    with_id,
    without_id,
)

# Row ids appended, remembered this long: a row is never published twice within it.
APPENDED_MEMORY_SECONDS = 3600.0


@dataclass
class _UserLog:
    entries: deque[tuple[tuple[int, int], float, Frame]] = field(default_factory=deque)
    # The newest id dropped by trimming: a client behind it cannot be replayed to.
    max_dropped: tuple[int, int] | None = None


class MemoryBus(Bus):
    """Per-user logs capped by length and age; ids are `<ms>-<seq>` like Redis Streams.

    The log lives as long as the process: ids from before it started are not positions of
    this log (ReplayUnavailable), and ids of this process never repeat after a restart.
    """

    def __init__(self, *, max_events: int, max_age_seconds: float) -> None:
        super().__init__()
        self._max_events = max_events
        self._max_age = max_age_seconds
        self._logs: dict[int, _UserLog] = {}
        self._started = (int(time.time() * 1000), 0)
        self._last_id = self._started
        self._appended: dict[int, float] = {}
        self._presence: dict[int, int] = defaultdict(int)
        self._send_claims: dict[str, float] = {}

    async def check(self) -> None:
        """Always able to deliver."""

    def _next_id(self) -> tuple[int, int]:
        ms = int(time.time() * 1000)
        last_ms, last_seq = self._last_id
        self._last_id = (ms, 0) if ms > last_ms else (last_ms, last_seq + 1)
        return self._last_id

    async def append(self, events: Sequence[LogEvent], *, gated: bool) -> list[Appended]:
        """Log each event for its recipients and deliver it; a known row id is skipped."""
        now = time.monotonic()
        self._forget_old_rows(now)
        results = []
        for event in events:
            if event.row_id in self._appended:
                results.append(Appended.DUPLICATE)
                continue
            self._appended[event.row_id] = now
            users = list(dict.fromkeys(event.recipients))
            EVENTS_PUBLISHED.labels(event.event_type).inc(len(users))
            for user_id in users:
                key = self._next_id()
                event_id = format_event_id(key)
                frame = Frame(event_id, with_id(event_id, event.body))
                log = self._logs.setdefault(user_id, _UserLog())
                log.entries.append((key, now, frame))
                self._trim(log, now)
                self._deliver(user_id, frame)
            results.append(Appended.LOGGED)
        return results

    def _forget_old_rows(self, now: float) -> None:
        while self._appended:
            row_id, at = next(iter(self._appended.items()))
            if now - at < APPENDED_MEMORY_SECONDS:
                return
            del self._appended[row_id]

    def _trim(self, log: _UserLog, now: float) -> None:
        # Keep an event while it is among the newest `max_events` OR younger than `max_age`.
        while len(log.entries) > self._max_events and now - log.entries[0][1] > self._max_age:
            key, _, _ = log.entries.popleft()
            log.max_dropped = key

    async def publish_ephemeral(
        self,
        user_ids: Iterable[int],
        event_type: str,
        data: Mapping[str, Any],
        *,
        internal: bool = False,
    ) -> None:
        """Deliver without logging (one process: an internal notice needs nothing more)."""
        frame = Frame(None, without_id(encode_body(event_type, data)))
        for user_id in dict.fromkeys(user_ids):
            self._deliver(user_id, frame)

    async def position(self, user_id: int, after_id: str | None) -> Position:
        """Logged events after `after_id`, and the id live events follow."""
        log = self._logs.get(user_id) or _UserLog()
        if after_id is None:
            newest = log.entries[-1][0] if log.entries else self._started
            return Position([], format_event_id(newest))
        after = parse_event_id(after_id)
        # A position of this user's log: the base it starts from, the newest id trimmed
        # from it, or one of its events (ids are global here, but another user's is none
        # of these, as with Redis).
        if after is None or not (
            after in (self._started, log.max_dropped) or any(k == after for k, _, _ in log.entries)
        ):
            raise ReplayUnavailable(after_id)
        if log.max_dropped is not None and after < log.max_dropped:
            raise ReplayUnavailable(after_id)
        frames = [frame for key, _, frame in log.entries if key > after]
        last = frames[-1].event_id if frames else None
        return Position(frames, last or after_id)

    async def claim_send(self, key: str) -> bool:
        """Claim a job row's sending in this process."""
        now = time.monotonic()
        claimed = self._send_claims.get(key)
        if claimed is not None and now - claimed < APPENDED_MEMORY_SECONDS:
            return False
        self._send_claims[key] = now
        return True

    async def release_send(self, key: str, *, sent: bool) -> None:
        """Keep the claim of a sent job; free an unsent one."""
        if not sent:
            self._send_claims.pop(key, None)

    async def presence_join(self, user_id: int) -> bool:
        """Count a socket; True for the user's first."""
        self._presence[user_id] += 1
        return self._presence[user_id] == 1

    async def presence_leave(self, user_id: int) -> bool:
        """Uncount a socket; True when it was the user's last."""
        self._presence[user_id] -= 1
        if self._presence[user_id] <= 0:
            del self._presence[user_id]
            return True
        return False
