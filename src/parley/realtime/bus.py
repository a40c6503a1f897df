"""The event bus: a per-user event log plus live fan-out to this process's sockets.

Two implementations share this interface: in-process memory (embedded mode) and Redis
(services mode: Streams for the log, pub/sub for live delivery across processes).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from parley.realtime.codec import Frame

Listener = Callable[[Frame], None]


class ReplayUnavailable(Exception):
    """The requested position is older than the log keeps: the client must resync."""


class Bus(ABC):
    """Publishes events to users and delivers them to the listeners of this process."""

    def __init__(self) -> None:
        self._listeners: dict[int, set[Listener]] = defaultdict(set)
        self._presence: dict[int, int] = defaultdict(int)

    async def start(self) -> None:
        """Open connections and background tasks."""

    async def close(self) -> None:
        """Release everything `start` opened."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise if the bus cannot deliver right now."""

    @abstractmethod
    async def publish(
        self, user_ids: Iterable[int], event_type: str, data: Mapping[str, Any]
    ) -> None:
        """Append the event to each user's log (assigning ids) and deliver it live."""

    @abstractmethod
    async def publish_ephemeral(
        self, user_ids: Iterable[int], event_type: str, data: Mapping[str, Any]
    ) -> None:
        """Deliver an event live only: no id, never replayed."""

    @abstractmethod
    async def replay(self, user_id: int, after_id: str) -> list[Frame]:
        """The user's logged events after `after_id`, oldest first.

        Raises ReplayUnavailable when events after that id were already dropped.
        """

    async def listen(self, user_id: int, listener: Listener) -> None:
        """Call `listener` with every event for `user_id` published from now on, in order."""
        first = not self._listeners[user_id]
        self._listeners[user_id].add(listener)
        if first:
            await self._subscribe(user_id)

    async def unlisten(self, user_id: int, listener: Listener) -> None:
        """Stop calling `listener`."""
        listeners = self._listeners.get(user_id)
        if listeners is None:
            return
        listeners.discard(listener)
        if not listeners:
            del self._listeners[user_id]
            await self._unsubscribe(user_id)

    async def presence_join(self, user_id: int) -> bool:
        """Count one more open socket of `user_id`; True when it is their first anywhere."""
        self._presence[user_id] += 1
        return self._presence[user_id] == 1

    async def presence_leave(self, user_id: int) -> bool:
        """Count one socket fewer; True when it was their last anywhere."""
        self._presence[user_id] -= 1
        if self._presence[user_id] <= 0:
            del self._presence[user_id]
            return True
        return False

    def listened_users(self) -> int:
        """How many users have at least one listener in this process."""
        return len(self._listeners)

    def _deliver(self, user_id: int, frame: Frame) -> None:
        for listener in list(self._listeners.get(user_id, ())):
            listener(frame)

    async def _subscribe(self, user_id: int) -> None:
        """Start receiving `user_id`'s events in this process (no-op in memory)."""

    async def _unsubscribe(self, user_id: int) -> None:
        """Stop receiving `user_id`'s events in this process (no-op in memory)."""
