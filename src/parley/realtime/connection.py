"""One WebSocket's outgoing side: a bounded queue, ordering and de-duplication by event id."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from parley.ops.metrics import EVENTS_DELIVERED, WS_DROPPED
from parley.realtime.codec import Frame, parse_event_id

SLOW_CONSUMER_CLOSE_CODE = 1013  # "try again later": the client resumes by id


class Connection:
    """Queues frames for one socket. Frames with an id at or below the last one are dropped.

    While `buffering`, live frames are held back so a replay can go first; `go_live` then
    releases them, skipping any the replay already covered.
    """

    def __init__(
        self,
        user_id: int,
        *,
        queue_size: int,
        on_gap: Callable[[Connection], Coroutine[Any, Any, None]],
    ) -> None:
        self.user_id = user_id
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.last_id: tuple[int, int] | None = None
        self.buffering = True
        self._held: list[Frame] = []
        self._on_gap = on_gap
        self.overflowed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def offer(self, frame: Frame) -> None:
        """Called by the bus for every live frame of this user."""
        if self.buffering:
            self._held.append(frame)
            return
        if not frame.text:  # the bus lost live delivery for a while: refill from the log
            task = asyncio.get_running_loop().create_task(self._on_gap(self))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self.push(frame)

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
        """Queue a frame that is not an event (pong, resync notice)."""
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(text)

    def go_live(self) -> None:
        """Release the frames held during replay, in order, skipping duplicates."""
        self.buffering = False
        held, self._held = self._held, []
        for frame in held:
            self.offer(frame)
