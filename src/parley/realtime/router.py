"""The WebSocket endpoint: authenticate, replay, then relay live events both ways."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from parley.auth.deps import user_from_connection
from parley.common.errors import DomainError
from parley.realtime.connection import SLOW_CONSUMER_CLOSE_CODE, Connection
from parley.realtime.hub import Hub
from parley.resources import Resources

router = APIRouter(tags=["realtime"])
log = structlog.get_logger("parley.ws")

UNAUTHORIZED_CLOSE_CODE = 4401
MAX_CLIENT_FRAME = 4096
TYPING_MIN_INTERVAL = 1.0


def _bearer(websocket: WebSocket) -> str | None:
    token = websocket.query_params.get("token")
    if token:
        return token
    header = websocket.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


@router.websocket("/ws")
async def websocket_events(websocket: WebSocket) -> None:
    """Live events for the authenticated user; see the contract's WebSocket section."""
    resources: Resources = websocket.app.state.resources
    hub: Hub = resources.extras["hub"]
    try:
        async with resources.db.session() as session:
            user = await user_from_connection(
                websocket, session, token=_bearer(websocket), check_csrf=False
            )
    except DomainError:
        await websocket.accept()
        await websocket.close(code=UNAUTHORIZED_CLOSE_CODE, reason="not authenticated")
        return
    await websocket.accept()
    conn = await hub.connect(websocket, user.id, websocket.query_params.get("lastEventId"))
    sender = asyncio.create_task(_send_loop(websocket, conn))
    watchdog = asyncio.create_task(_close_when_overflowed(websocket, conn, sender))
    try:
        await _receive_loop(websocket, conn, hub, user.id)
    finally:
        for task in (sender, watchdog):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await hub.disconnect(websocket, conn)


async def _send_loop(websocket: WebSocket, conn: Connection) -> None:
    """Drain the socket's queue in order."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        while True:
            await websocket.send_text(await conn.queue.get())


async def _close_when_overflowed(
    websocket: WebSocket, conn: Connection, sender: asyncio.Task[None]
) -> None:
    """A socket whose queue overflowed is closed (1013); the client resumes by id."""
    await conn.overflowed.wait()
    sender.cancel()
    with contextlib.suppress(Exception):
        await websocket.close(code=SLOW_CONSUMER_CLOSE_CODE, reason="too slow")


async def _receive_loop(websocket: WebSocket, conn: Connection, hub: Hub, user_id: int) -> None:
    last_typing: dict[Any, float] = {}
    loop = asyncio.get_running_loop()
    while websocket.application_state == WebSocketState.CONNECTED:
        try:
            raw = await websocket.receive_text()
        except (WebSocketDisconnect, RuntimeError):
            return
        message = _parse(raw)
        if message is None:
            conn.push_text('{"type":"error","detail":"expected a JSON object with a type"}')
            continue
        kind = message.get("type")
        if kind == "ping":
            conn.push_text('{"type":"pong"}')
        elif kind == "typing":
            chat_id = message.get("chatId")
            if not isinstance(chat_id, int) or isinstance(chat_id, bool):
                conn.push_text('{"type":"error","detail":"typing needs an integer chatId"}')
                continue
            now = loop.time()
            if now - last_typing.get(chat_id, -TYPING_MIN_INTERVAL) < TYPING_MIN_INTERVAL:
                continue
            last_typing[chat_id] = now
            if not await hub.typing(user_id, chat_id):
                conn.push_text('{"type":"error","detail":"chat not found"}')
        else:
            conn.push_text('{"type":"error","detail":"unknown message type"}')


def _parse(raw: str) -> dict[str, Any] | None:
    if len(raw) > MAX_CLIENT_FRAME:
        return None
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None
