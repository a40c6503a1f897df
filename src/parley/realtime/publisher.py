"""The seam through which services hand events to live delivery."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol


class EventPublisher(Protocol):
    """Appends an event to each user's log and delivers it to their open sockets."""

    async def publish(
        self, user_ids: Iterable[int], event_type: str, data: Mapping[str, Any]
    ) -> None:
        """Record and fan out one event to every user in `user_ids`. Call only after commit."""
        ...
