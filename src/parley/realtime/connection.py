"""One WebSocket's outgoing side: a bounded queue, ordering and de-duplication by event id."""

from __future__ import annotations

import asyncio
import contextlib

from parley.ops.metrics import EVENTS_DELIVERED, WS_DROPPED
from parley.realtime.codec import Frame, format_event_id, parse_event_id

SLOW_CONSUMER_CLOSE_CODE = 1013  # "try again later": the client resumes by id


class Connection:
    """Queues frames for one socket. A logged frame at or below the last id sent is dropped.

    While `held` (a replay or a refill from the log is being read), live frames wait; going
    live releases those beyond the position the log gave, so that nothing is sent twice and
    nothing out of order.
    """

    def __init__(self, user_id: int, *, queue_size: int) -> None:
        self.user_id = user_id
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.last_id: tuple[int, int] | None = None
        self._holding = True
        self._held: list[Frame] = []
        self.overflowed = asyncio.Event()
        self.refilling = asyncio.Lock()

    @property
    def position(self) -> str | None:
        """The id of the last event queued to this socket (or of its `ready` frame)."""
        return format_event_id(self.last_id) if self.last_id is not None else None

    def offer(self, frame: Frame) -> None:
        """Called by the bus for every live frame of this user."""
        if self._holding:
            self._held.append(frame)
        else:
            self.push(frame)

    def hold(self) -> None:
        """Hold live frames back while the log is read."""
        self._holding = True

    def push(self, frame: Frame) -> None:
        """Queue a frame unless it is a duplicate; flag the socket as too slow when full."""
        if frame.event_id is not None:
            key = parse_event_id(frame.event_id)
            if key is not None:
                if self.last_id is not None and key <= self.last_id:
                    return
                self.last_id = key
        try:
            self.queue.put_nowait(frame.text)
        except asyncio.QueueFull:
            WS_DROPPED.inc()
            self.overflowed.set()
            return
        EVENTS_DELIVERED.inc()

    def push_text(self, text: str) -> None:
        """Queue a frame that is not an event (pong, resync notice, ready)."""
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(text)

    def go_live(self, last_event_id: str, *, restart: bool = False) -> None:
        """Live events follow `last_event_id`: release the held frames beyond it, in order.

        With `restart` (after a resync) the position starts over at `last_event_id`, even
        if the log that gave it is a new one whose ids are not above the old ones.
        """
        key = parse_event_id(last_event_id)
        if key is not None and (restart or self.last_id is None or key > self.last_id):
            self.last_id = key
        self._holding = False
        held, self._held = self._held, []
        for frame in held:
            self.push(frame)
