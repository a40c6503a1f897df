"""One WebSocket's outgoing side: ordering, de-duplication by event id, and writes that
wait only for a client that has stopped reading."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Protocol

import structlog
from starlette.websockets import WebSocketDisconnect

from parley.ops.metrics import EVENTS_DELIVERED, WS_DROPPED
from parley.realtime.codec import (
    Frame,
    ended_session_id,
    format_event_id,
    is_session_ended,
    parse_event_id,
)
from parley.realtime.eager import start_now

SLOW_CONSUMER_CLOSE_CODE = 1013  # "try again later": the client resumes by id
UNAUTHORIZED_CLOSE_CODE = 4401  # the contract's "not authenticated", also once signed out
# What a write to a socket whose client has gone raises (Starlette, uvicorn, the kernel).
GONE = (WebSocketDisconnect, RuntimeError, OSError)

log = structlog.get_logger("parley.ws")


class Socket(Protocol):
    """The two things a connection does with its WebSocket (Starlette's has both)."""

    async def send_text(self, data: str) -> None:
        """Send one text frame."""
        ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Send a close frame."""
        ...


class Connection:
    """Writes frames to one socket in order. A logged frame at or below the last id sent is
    dropped.

    A frame is written at once, in the caller (the bus's delivery loop), without a task of
    its own. Only a write that has to wait (the client is not reading and the transport's
    buffer is full) gets a task; frames that come meanwhile wait in a backlog of at most
    `queue_size`, and a socket whose backlog overflows is closed with 1013, so one stalled
    client never holds up the others.

    While `held` (a replay or a refill from the log is being read), live frames wait; going
    live releases those beyond the position the log gave, so that nothing is sent twice and
    nothing out of order.
    """

    # One per open socket, most of them idle: slots, and nothing made before it is needed.
    __slots__ = (
        "_backlog",
        "_closer",
        "_held",
        "_holding",
        "_queue_size",
        "_refilling",
        "_socket",
        "_stopped",
        "_waiting_write",
        "_write_text",
        "browser_session_id",
        "last_id",
        "user_id",
    )

    def __init__(
        self,
        user_id: int,
        socket: Socket,
        *,
        queue_size: int,
        write_text: Callable[[str], bool] | None = None,
        browser_session_id: int | None = None,
    ) -> None:
        self.user_id = user_id
        # The browser session whose cookie opened the socket: it closes when that ends.
        self.browser_session_id = browser_session_id
        self.last_id: tuple[int, int] | None = None
        self._refilling: asyncio.Lock | None = None
        self._socket = socket
        self._write_text = write_text
        self._queue_size = queue_size
        # Made when first needed: an empty deque costs ~0.7 KiB, and most sockets never wait.
        self._backlog: deque[str] | None = None
        self._waiting_write: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._stopped = False
        self._holding = True
        self._held: list[Frame] = []

    @property
    def refilling(self) -> asyncio.Lock:
        """Held while the socket is refilled from the log, so that two refills never mix."""
        if self._refilling is None:
            self._refilling = asyncio.Lock()
        return self._refilling

    @property
    def position(self) -> str | None:
        """The id of the last event queued to this socket (or of its `ready` frame)."""
        return format_event_id(self.last_id) if self.last_id is not None else None

    @property
    def backlog(self) -> int:
        """Frames waiting for the client to read what was written before them."""
        return len(self._backlog) if self._backlog is not None else 0

    def offer(self, frame: Frame) -> None:
        """Called by the bus for every live frame of this user."""
        if frame.event_id is None and is_session_ended(frame.text):
            self._session_ended(frame.text)
        elif self._holding:
            self._held.append(frame)
        else:
            self.push(frame)

    def hold(self) -> None:
        """Hold live frames back while the log is read."""
        self._holding = True

    def push(self, frame: Frame) -> None:
        """Write a frame unless it is a duplicate."""
        if frame.event_id is not None:
            key = parse_event_id(frame.event_id)
            if key is not None:
                if self.last_id is not None and key <= self.last_id:
                    return
                self.last_id = key
        if self._write(frame.text):
            EVENTS_DELIVERED.value += 1

    def push_text(self, text: str) -> None:
        """Write a frame that is not an event (pong, resync notice, ready)."""
        self._write(text)

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

    def stop(self) -> None:
        """The socket has closed: write nothing more."""
        self._stopped = True
        self._backlog = None
        for task in (self._waiting_write, self._closer):
            if task is not None:
                task.cancel()

    # -- writing ----------------------------------------------------------------------------

    def _write(self, text: str) -> bool:
        """Write now, or after the write that is waiting; False when it will not be written."""
        if self._stopped:
            return False
        if self._waiting_write is None:
            return self._start(text)
        if self._backlog is None:
            self._backlog = deque()
        elif len(self._backlog) >= self._queue_size:
            self._close_slow_consumer()
            return False
        self._backlog.append(text)
        return True

    def _start(self, text: str) -> bool:
        try:
            # Straight to the transport when the server offers it and the socket takes
            # it now (`ws_protocol.ParleyWebSocketProtocol.write_text`); else through ASGI.
            if self._write_text is not None and self._write_text(text):
                return True
            task = start_now(self._socket.send_text(text))
        except Exception as exc:  # raised here, it must not reach the bus's delivery loop
            self._write_failed(exc)
            return False
        if task is not None:
            self._waiting_write = task
            task.add_done_callback(self._written)
        return True

    def _written(self, task: asyncio.Task[None]) -> None:
        """A write that waited is done: write the backlog, until one has to wait again."""
        self._waiting_write = None
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self._write_failed(error)
            return
        backlog = self._backlog
        while backlog and self._waiting_write is None and not self._stopped:
            self._start(backlog.popleft())

    def _write_failed(self, error: BaseException) -> None:
        # The client has gone (the receive loop sees it too and ends the socket), or
        # something unexpected failed: either way this socket gets nothing more.
        self._stopped = True
        if not isinstance(error, GONE):
            log.warning("a socket write failed", error=f"{type(error).__name__}: {error}")

    def _session_ended(self, notice: str) -> None:
        """A browser session ended: its sockets close, and nothing more reaches them."""
        session_id = self.browser_session_id
        if session_id is not None and ended_session_id(notice) == session_id:
            self.signed_out()

    def signed_out(self) -> None:
        """The browser session that opened the socket has ended: close it as the contract says."""
        self.close(UNAUTHORIZED_CLOSE_CODE, "signed out")

    def _close_slow_consumer(self) -> None:
        WS_DROPPED.inc()
        self.close(SLOW_CONSUMER_CLOSE_CODE, "too slow")

    def close(self, code: int, reason: str) -> None:
        """Write nothing more, and close the socket with `code` (in a task of its own)."""
        if self._stopped and self._closer is not None:
            return  # closing already
        self.stop()
        self._closer = asyncio.get_running_loop().create_task(
            self._close(code, reason), name="ws-close"
        )

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self._socket.close(code=code, reason=reason)
