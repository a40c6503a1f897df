"""Presence without flapping: a socket that reconnects within a few seconds stays online."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

# How long an `offline` waits for an `online` that takes it back (a reconnecting client
# typically comes back within a second or two).
GRACE_SECONDS = 5.0

Announce = Callable[[Any, str], None]


class PresenceFilter:
    """Passes presence changes on to `announce(user_id, status)`, minus short absences.

    `online` is announced at once, unless it cancels an `offline` still in its grace
    period: then neither is. `offline` is announced when no `online` came within `grace`
    seconds.
    """

    def __init__(self, announce: Announce, *, grace: float = GRACE_SECONDS) -> None:
        self._announce = announce
        self._grace = grace
        self._pending: dict[Any, asyncio.TimerHandle] = {}

    def offer(self, user_id: Any, status: Any) -> None:
        """Take one `presence` event's user and status."""
        pending = self._pending.pop(user_id, None)
        if pending is not None:
            pending.cancel()
        if status == "offline":
            loop = asyncio.get_running_loop()
            self._pending[user_id] = loop.call_later(self._grace, self._went, user_id)
        elif pending is None:
            self._announce(user_id, str(status))

    def _went(self, user_id: Any) -> None:
        self._pending.pop(user_id, None)
        self._announce(user_id, "offline")

    def close(self) -> None:
        """Drop the announcements still waiting."""
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()
