"""This process's open sockets: registration, presence, typing and shutdown."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy import select
from starlette.websockets import WebSocket

from parley.chats.models import ChatMember
from parley.db.engine import Database
from parley.ops.metrics import WS_OPEN
from parley.realtime.bus import Bus, ReplayUnavailable
from parley.realtime.connection import Connection

log = structlog.get_logger("parley.hub")

RESYNC_FRAME = '{"type":"resync.required"}'


class Hub:
    """Tracks sockets per user and drives replay, presence and typing for them."""

    def __init__(self, bus: Bus, db: Database, *, queue_size: int) -> None:
        self.bus = bus
        self.db = db
        self.queue_size = queue_size
        self._sockets: dict[int, set[WebSocket]] = defaultdict(set)

    @property
    def open_sockets(self) -> int:
        """Sockets open in this process."""
        return sum(len(s) for s in self._sockets.values())

    async def connect(
        self, websocket: WebSocket, user_id: int, last_event_id: str | None
    ) -> Connection:
        """Start delivery to a new socket: replay after `last_event_id`, then live."""
        conn = Connection(user_id, queue_size=self.queue_size, on_gap=self.refill)
        await self.bus.listen(user_id, conn.offer)
        if last_event_id:
            await self._replay(conn, last_event_id)
        conn.go_live()
        self._sockets[user_id].add(websocket)
        WS_OPEN.inc()
        if await self.bus.presence_join(user_id):
            await self._announce_presence(user_id, "online")
        return conn

    async def disconnect(self, websocket: WebSocket, conn: Connection) -> None:
        """Stop delivery to a socket that has closed."""
        user_id = conn.user_id
        await self.bus.unlisten(user_id, conn.offer)
        sockets = self._sockets.get(user_id)
        if sockets is not None and websocket in sockets:
            sockets.discard(websocket)
            WS_OPEN.dec()
            if not sockets:
                del self._sockets[user_id]
            if await self.bus.presence_leave(user_id):
                await self._announce_presence(user_id, "offline")

    async def _replay(self, conn: Connection, after_id: str) -> None:
        try:
            frames = await self.bus.replay(conn.user_id, after_id)
        except ReplayUnavailable:
            conn.push_text(RESYNC_FRAME)
            return
        except Exception as exc:  # the log cannot be read: a resync is always a safe answer
            log.warning("replay failed; asking the client to resync", error=str(exc))
            conn.push_text(RESYNC_FRAME)
            return
        for frame in frames:
            conn.push(frame)

    async def refill(self, conn: Connection) -> None:
        """After the bus lost live delivery: send whatever the log has beyond the socket."""
        if conn.last_id is None:
            conn.push_text(RESYNC_FRAME)
            return
        await self._replay(conn, f"{conn.last_id[0]}-{conn.last_id[1]}")

    async def typing(self, user_id: int, chat_id: int) -> bool:
        """Tell a chat's other members that `user_id` is typing; False if not a member."""
        async with self.db.session() as session:
            members = list(
                await session.scalars(
                    select(ChatMember.user_id).where(ChatMember.chat_id == chat_id)
                )
            )
        if user_id not in members:
            return False
        others = [m for m in members if m != user_id]
        await self.bus.publish_ephemeral(others, "typing", {"chatId": chat_id, "userId": user_id})
        return True

    async def _announce_presence(self, user_id: int, status: str) -> None:
        async with self.db.session() as session:
            mine = select(ChatMember.chat_id).where(ChatMember.user_id == user_id)
            contacts = set(
                await session.scalars(
                    select(ChatMember.user_id).where(ChatMember.chat_id.in_(mine)).distinct()
                )
            )
        contacts.discard(user_id)
        await self.bus.publish_ephemeral(
            contacts, "presence", {"userId": user_id, "status": status}
        )

    async def close_all(self, code: int, reason: str = "") -> None:
        """Close every socket of this process (shutdown: 1001 so clients resume elsewhere)."""
        closers: list[Awaitable[None]] = [
            ws.close(code=code, reason=reason)
            for sockets in list(self._sockets.values())
            for ws in list(sockets)
        ]
        await asyncio.gather(*closers, return_exceptions=True)


HubFactory = Callable[[Bus, Database], Hub]
