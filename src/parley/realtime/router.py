"""The WebSocket endpoint: authenticate, replay, then relay live events both ways."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Query, WebSocket, status
from fastapi.responses import JSONResponse
from starlette.datastructures import QueryParams
from starlette.websockets import WebSocketState

from parley.auth.deps import caller_from_connection
from parley.common.errors import DomainError
from parley.common.ids import MAX_ID
from parley.common.responses import errors
from parley.realtime.codec import PONG_FRAME, error_frame
from parley.realtime.connection import UNAUTHORIZED_CLOSE_CODE, Connection
from parley.realtime.hub import Hub, SignedOut
from parley.realtime.origins import origin_allowed
from parley.resources import Resources

router = APIRouter(tags=["realtime"])
SOCKET_PATH = "/ws"
log = structlog.get_logger("parley.ws")

FORBIDDEN_ORIGIN_CLOSE_CODE = 4403
TOO_BIG_CLOSE_CODE = 1009
TRY_AGAIN_LATER_CLOSE_CODE = 1013
# The largest client frame: `parley serve` refuses bigger ones while reading them (1009).
MAX_CLIENT_FRAME_BYTES = 64 * 1024
TYPING_MIN_INTERVAL = 1.0


def _bearer(websocket: WebSocket, params: QueryParams) -> str | None:
    token = params.get("token")
    if token:
        return token
    header = websocket.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def websocket_events(websocket: WebSocket) -> None:
    """Live events for the authenticated user; see the contract's WebSocket section."""
    resources: Resources = websocket.app.state.resources
    admitted = await _admit(websocket, resources)
    if admitted is None:
        return
    user_id, browser_session_id, last_event_id = admitted
    hub = resources.hub
    try:
        conn = await hub.connect(
            websocket, user_id, last_event_id, browser_session_id=browser_session_id
        )
    except SignedOut:
        with contextlib.suppress(Exception):
            await websocket.close(code=UNAUTHORIZED_CLOSE_CODE, reason="signed out")
        return
    except Exception as exc:  # the bus cannot serve sockets now
        await _refuse_for_now(websocket, "pubsub", exc, accepted=True)
        return
    try:
        await _receive_loop(websocket, conn, hub, user_id)
    finally:
        conn.stop()
        with contextlib.suppress(Exception):  # presence is best effort when Redis is down
            await hub.disconnect(websocket, conn)


async def _admit(
    websocket: WebSocket, resources: Resources
) -> tuple[int, int | None, str | None] | None:
    """Check the origin, authenticate, accept: the user's id, the browser session whose
    cookie was used (None with a token) and the `lastEventId` asked for, or None when the
    socket was refused (and closed).

    The endpoint's frame lives as long as the socket, this one's does not: the database
    session, the ORM user and the parsed query are gone once it returns, and so are the
    handshake's headers (`_forget_headers`).
    """
    params = QueryParams(websocket.scope["query_string"])  # not cached on the socket
    token = _bearer(websocket, params)
    if token is None and not origin_allowed(websocket, resources.settings.cors_origin_list):
        # A cookie travels with any page's request: only our own pages may use it here.
        await websocket.close(code=FORBIDDEN_ORIGIN_CLOSE_CODE)
        return None
    try:
        async with resources.db.session() as session:
            caller = await caller_from_connection(websocket, session, token=token, check_csrf=False)
            user_id = caller.user.id
    except DomainError:
        await websocket.accept()
        await websocket.close(code=UNAUTHORIZED_CLOSE_CODE, reason="not authenticated")
        return None
    except Exception as exc:  # the database is unreachable: the client tries again later
        await _refuse_for_now(websocket, "database", exc)
        return None
    await websocket.accept()
    _forget_headers(websocket)
    return user_id, caller.browser_session_id, params.get("lastEventId")


def _forget_headers(websocket: WebSocket) -> None:
    """Drop the handshake's headers from the socket's scope: nothing reads them once the
    socket is accepted, and every frame under the socket's ASGI call holds the scope
    (~0.9 KiB per open socket)."""
    headers = websocket.scope.get("headers")
    if isinstance(headers, list):
        headers.clear()  # in place: Starlette's cached `Headers` holds the same list


# A plain Starlette route, not FastAPI's: the endpoint takes no dependencies, and FastAPI's
# route keeps two exit stacks and its dependency state alive for as long as each socket is
# open (docs/performance.md, memory per idle socket). `create_app` serves the path by a
# socket lane in front of its routes; this route serves a mount that bypasses that.
router.add_websocket_route(SOCKET_PATH, websocket_events)

SOCKET_DESCRIPTION = """\
A WebSocket, not a REST route: open it with a WebSocket handshake (`GET` with `Upgrade:
websocket`); a plain `GET` answers 426. Authenticate with `?token=<access_token>`, an
`Authorization: Bearer` header, or the session cookie (from an allowed `Origin`). With
`?lastEventId=<id>` the server first replays every event after that id that it still keeps
(or sends `resync.required`), then `ready`, then live events. Frames, events and close
codes: the API guide (docs/api.md, "Live events").
"""


@router.get(
    SOCKET_PATH,
    name="websocket_events",
    operation_id="websocket_events",  # it documents that handler, the WebSocket's
    summary="Live events (WebSocket)",
    description=SOCKET_DESCRIPTION,
    status_code=status.HTTP_426_UPGRADE_REQUIRED,
    responses={
        101: {"description": "the socket is open: events follow as JSON text frames"},
        **errors(426),
    },
)
async def websocket_events_without_upgrade(
    token: Annotated[str | None, Query(description="an access token")] = None,
    last_event_id: Annotated[
        str | None, Query(alias="lastEventId", description="resume after this event id")
    ] = None,
) -> JSONResponse:
    """A plain HTTP request to the socket's address: 426, naming the protocol to use."""
    return JSONResponse(
        {"detail": "this address is a WebSocket: open it with a WebSocket handshake"},
        status_code=status.HTTP_426_UPGRADE_REQUIRED,
        headers={"Upgrade": "websocket"},
    )


async def _refuse_for_now(
    websocket: WebSocket, dependency: str, exc: BaseException, *, accepted: bool = False
) -> None:
    log.warning(
        "socket refused: a dependency is unavailable",
        dependency=dependency,
        error=f"{type(exc).__name__}: {exc}"[:300],
    )
    with contextlib.suppress(Exception):
        if not accepted:
            await websocket.accept()
        await websocket.close(code=TRY_AGAIN_LATER_CLOSE_CODE, reason=f"{dependency} unavailable")


async def _receive_loop(websocket: WebSocket, conn: Connection, hub: Hub, user_id: int) -> None:
    last_typing: dict[Any, float] = {}
    loop = asyncio.get_running_loop()
    while websocket.application_state == WebSocketState.CONNECTED:
        try:
            received = await websocket.receive()
        except RuntimeError:  # the socket has closed
            return
        if received["type"] == "websocket.disconnect":
            return
        raw = received.get("text")
        if raw is None:  # a binary frame
            conn.push_text(error_frame("expected a JSON object with a type, in a text frame"))
            continue
        if len(raw) > MAX_CLIENT_FRAME_BYTES // 4 and len(raw.encode()) > MAX_CLIENT_FRAME_BYTES:
            with contextlib.suppress(Exception):
                await websocket.close(code=TOO_BIG_CLOSE_CODE, reason="frame too big")
            return
        message = _parse(raw)
        if message is None:
            conn.push_text(error_frame("expected a JSON object with a type"))
            continue
        kind = message.get("type")
        if kind == "ping":
            conn.push_text(PONG_FRAME)
        elif kind == "typing":
            chat_id = message.get("chatId")
            if not isinstance(chat_id, int) or isinstance(chat_id, bool):
                conn.push_text(error_frame("typing needs an integer chatId"))
                continue
            if not 1 <= chat_id <= MAX_ID:  # no chat has it, and the database may not take it
                conn.push_text(error_frame("chat not found"))
                continue
            now = loop.time()
            if now - last_typing.get(chat_id, -TYPING_MIN_INTERVAL) < TYPING_MIN_INTERVAL:
                continue
            last_typing[chat_id] = now
            try:
                known = await hub.typing(user_id, chat_id)
            except Exception as exc:  # typing is ephemeral: a lost one is no loss
                log.info("typing not sent", error=f"{type(exc).__name__}"[:100])
                continue
            if not known:
                # Only the caller's own chats stay remembered: ids of others, any number of
                # them, must not grow what a socket holds.
                del last_typing[chat_id]
                conn.push_text(error_frame("chat not found"))
        else:
            conn.push_text(error_frame("unknown message type"))


def _parse(raw: str) -> dict[str, Any] | None:
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return message if isinstance(message, dict) else None
