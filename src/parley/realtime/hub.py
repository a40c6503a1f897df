"""This process's open sockets: where each starts, refills after a gap, presence and typing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Collection, Coroutine
from typing import Any, Protocol

import structlog
from starlette.websockets import WebSocket

from parley.ops.metrics import WS_OPEN
from parley.realtime.bus import Bus, Position, ReplayUnavailable
from parley.realtime.codec import RESYNC_FRAME, SESSION_ENDED_TYPE, ready_frame
from parley.realtime.connection import Connection
from parley.realtime.ws_protocol import direct_writer

log = structlog.get_logger("parley.hub")


class Directory(Protocol):
    """What live delivery needs to know about chats (the chats domain provides it)."""

    async def members_of(self, chat_id: int) -> list[int]:
        """The ids of a chat's members (empty for a missing chat)."""
        ...

    async def presence_audience(self, user_id: int) -> list[int]:
        """The users who are told when `user_id` comes online or goes offline."""
        ...


class Sessions(Protocol):
    """What live delivery needs to know about browser sessions (auth provides it)."""

    async def lives(self, user_id: int, session_id: int) -> bool:
        """Whether `user_id`'s browser session `session_id` still lives."""
        ...

    async def living(self, sessions: Collection[tuple[int, int]]) -> set[tuple[int, int]]:
        """Those of `sessions`, (user id, session id) pairs, that still live."""
        ...


class SignedOut(Exception):
    """The browser session that opened a socket ended before the socket started."""


class Hub:
    """Tracks the sockets of this process and feeds each one from the bus."""

    def __init__(
        self, bus: Bus, directory: Directory, sessions: Sessions, *, queue_size: int
    ) -> None:
        self.bus = bus
        self.directory = directory
        self.sessions = sessions
        self.queue_size = queue_size
        self._sockets: dict[WebSocket, Connection] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._gaps_ended = 0  # how many times live delivery came back after a gap
        bus.on_gap(self._after_gap)

    @property
    def open_sockets(self) -> int:
        """Sockets open in this process."""
        return len(self._sockets)

    async def connect(
        self,
        websocket: WebSocket,
        user_id: int,
        last_event_id: str | None,
        *,
        browser_session_id: int | None = None,
    ) -> Connection:
        """Start delivery to a new socket: replay after `last_event_id`, `ready`, then live.

        A socket opened by a browser session's cookie (`browser_session_id`) closes when
        that session ends. The session is checked again once the socket hears of its end
        and before anything is sent: an end in between would otherwise go unheard. Raises
        SignedOut when it has ended, and the bus's error when it cannot serve the socket
        now (the caller closes the socket either way).
        """
        await self.bus.check()
        conn = Connection(
            user_id,
            websocket,
            queue_size=self.queue_size,
            write_text=direct_writer(websocket.scope),
            browser_session_id=browser_session_id,
        )
        self.bus.listen(user_id, conn.offer)
        try:
            await self._check_signed_in(conn)
            await self._start_at(conn, last_event_id, refill=False)
        except BaseException:
            self.bus.unlisten(user_id, conn.offer)
            raise
        self._sockets[websocket] = conn
        WS_OPEN.inc()
        if await self.bus.presence_join(user_id):
            await self._announce_presence(user_id, "online")
        return conn

    async def disconnect(self, websocket: WebSocket, conn: Connection) -> None:
        """Stop delivery to a socket that has closed."""
        self.bus.unlisten(conn.user_id, conn.offer)
        if self._sockets.pop(websocket, None) is None:
            return
        WS_OPEN.dec()
        if await self.bus.presence_leave(conn.user_id):
            await self._announce_presence(conn.user_id, "offline")

    async def _start_at(self, conn: Connection, after_id: str | None, *, refill: bool) -> None:
        """Queue what the log holds after `after_id`, or a resync notice, then go live.

        A new socket always gets `ready`; a refill only after a resync (its position then
        starts over), since its client already knows where it is otherwise.

        Live delivery may come back from a gap while the log is read, and what was
        published between the log's answer and the new subscription then reached neither.
        So while a gap ended during the last read, the log is read again after that read's
        position, live frames still waiting (and a browser session's socket is first closed
        if the session has ended: the notice may have gone missing too).
        """
        conn.hold()
        gaps = self._gaps_ended
        position, restart = await self._read_log(conn.user_id, after_id)
        frames = list(position.frames)
        while self._gaps_ended != gaps:
            gaps = self._gaps_ended
            await self._check_signed_in(conn)
            position, again = await self._read_log(conn.user_id, position.last_event_id)
            if again:
                frames, restart = [], True
            frames.extend(position.frames)
        if restart:
            conn.push_text(RESYNC_FRAME)
        for frame in frames:
            conn.push(frame)
        if restart or not refill:
            conn.push_text(ready_frame(position.last_event_id))
        conn.go_live(position.last_event_id, restart=restart)

    async def _read_log(self, user_id: int, after_id: str | None) -> tuple[Position, bool]:
        """The user's log after `after_id`; or, with True (the client must resync), the
        position at its end when the log no longer holds that id."""
        try:
            return await self.bus.position(user_id, after_id), False
        except ReplayUnavailable:
            return await self.bus.position(user_id, None), True

    async def _check_signed_in(self, conn: Connection) -> None:
        """Raise SignedOut if `conn` was opened by a browser session that has ended."""
        session_id = conn.browser_session_id
        if session_id is not None and not await self.sessions.lives(conn.user_id, session_id):
            raise SignedOut

    def _after_gap(self) -> None:
        """Live delivery may have missed events: refill every socket from the log.

        It may have missed a sign-out's notice too: the sockets opened by a browser session
        are held (given nothing) until the database says which sessions still live, then
        the others are closed and the rest refilled.
        """
        self._gaps_ended += 1  # a start or refill reading the log meanwhile reads on
        by_cookie: dict[Connection, tuple[int, int]] = {}
        for conn in list(self._sockets.values()):
            # From now on live frames wait for the refill: one written before it reads the
            # log would move the socket past what the gap missed.
            conn.hold()
            session_id = conn.browser_session_id
            if session_id is None:
                self._in_background(self._refill(conn))
            else:
                by_cookie[conn] = (conn.user_id, session_id)
        if by_cookie:
            self._in_background(self._refill_if_signed_in(by_cookie))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refill_if_signed_in(self, opened_by: dict[Connection, tuple[int, int]]) -> None:
        """Close the sockets whose browser session (user id, session id) has ended, with one
        question for them all, and refill the others."""
        living = await self.sessions.living(set(opened_by.values()))
        still_open = set(self._sockets.values())
        for conn, session in opened_by.items():
            if conn not in still_open:
                continue
            if session in living:
                self._in_background(self._refill(conn))
            else:
                conn.signed_out()

    async def _refill(self, conn: Connection) -> None:
        async with conn.refilling:
            try:
                await self._start_at(conn, conn.position, refill=True)
            except SignedOut:
                conn.signed_out()
            except Exception as exc:  # the log cannot be read now; the next gap refills
                log.warning("could not refill a socket from the log", error=str(exc)[:200])
                conn.go_live(conn.position or "0-0")

    async def typing(self, user_id: int, chat_id: int) -> bool:
        """Tell a chat's other members that `user_id` is typing; False if not a member."""
        members = await self.directory.members_of(chat_id)
        if user_id not in members:
            return False
        others = [m for m in members if m != user_id]
        await self.bus.publish_ephemeral(others, "typing", {"chatId": chat_id, "userId": user_id})
        return True

    async def end_browser_session(self, user_id: int, session_id: int) -> None:
        """Close, in every process, the sockets that browser session `session_id` opened."""
        await self.bus.publish_ephemeral(
            [user_id], SESSION_ENDED_TYPE, {"sessionId": session_id}, internal=True
        )

    async def _announce_presence(self, user_id: int, status: str) -> None:
        audience = [u for u in await self.directory.presence_audience(user_id) if u != user_id]
        await self.bus.publish_ephemeral(
            audience, "presence", {"userId": user_id, "status": status}
        )

    async def close_all(self, code: int, reason: str = "") -> None:
        """Close every socket of this process (shutdown: 1001 so clients resume elsewhere)."""
        closers: list[Awaitable[None]] = [
            ws.close(code=code, reason=reason) for ws in list(self._sockets)
        ]
        await asyncio.gather(*closers, return_exceptions=True)
