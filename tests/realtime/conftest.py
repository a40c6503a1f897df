"""Live `parley serve` processes: two on PostgreSQL + Redis, or one embedded."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import MODE
from tests.fixtures.servers import ServerProcess, server_env, start_server
from tests.fixtures.users import PASSWORD, register_on

RECEIVE_TIMEOUT = 10.0
# The close code of a socket whose browser session ended, and the server's own notice of it.
UNAUTHORIZED = 4401
NOTICE = "parley.session.ended"


@pytest.fixture(scope="module")
def servers(
    database_url: str, redis_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServerProcess]]:
    """Two server processes in services mode; one (embedded is one process) otherwise."""
    workdir: Path = tmp_path_factory.mktemp("servers")
    count = 2 if MODE == "services" else 1
    started = [start_server(server_env(database_url, redis_url), workdir) for _ in range(count)]
    yield started
    for server in started:
        server.stop()


class ServerWith(Protocol):
    def __call__(self, **env: str) -> ServerProcess: ...


@pytest.fixture
def server_with(database_url: str, redis_url: str | None, tmp_path: Path) -> Iterator[ServerWith]:
    """Start a server of the run's database with these PARLEY_* variables; stopped after."""
    started: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        server = start_server(server_env(database_url, redis_url, **env), tmp_path)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server_a(servers: list[ServerProcess]) -> ServerProcess:
    return servers[0]


@pytest.fixture
def server_b(servers: list[ServerProcess]) -> ServerProcess:
    """The second process in services mode; the same one when embedded."""
    return servers[-1]


class Api:
    """A small REST client bound to one user on one server."""

    def __init__(self, base: str, token: str, user_id: int, username: str) -> None:
        self.base = base
        self.token = token
        self.id = user_id
        self.username = username
        self.client = httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=15
        )

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.post(f"/api/v1{path}", **kwargs)

    async def send(self, chat_id: int, text: str, **extra: Any) -> dict[str, Any]:
        resp = await self.post(f"/chats/{chat_id}/messages", json={"text": text, **extra})
        assert resp.status_code in (200, 201), resp.text
        body: dict[str, Any] = resp.json()
        return body

    async def group(self, *members: Api, title: str = "room") -> int:
        resp = await self.post(
            "/chats", json={"type": "group", "title": title, "memberIds": [m.id for m in members]}
        )
        assert resp.status_code == 201, resp.text
        return int(resp.json()["id"])


async def make_user(server: ServerProcess, username: str) -> Api:
    """Register and log in a user on `server`."""
    account = await register_on(server.http, username)
    return Api(server.http, account.access_token, account.id, username)


async def browser_login(server: ServerProcess, username: str) -> tuple[str, str]:
    """Sign in as the web page does: the `Cookie` header of the new session, and its CSRF
    token."""
    async with httpx.AsyncClient(base_url=server.http, timeout=15) as c:
        resp = await c.post("/api/v1/auth/login", data={"username": username, "password": PASSWORD})
        assert resp.status_code == 200, resp.text
        cookie = resp.cookies.get("parley_session")
    assert cookie
    return f"parley_session={cookie}", str(resp.json()["csrfToken"])


class Socket:
    """A WebSocket client that reads JSON frames with a timeout.

    `start()` reads up to the `ready` frame (keeping what came before it: a replay or a
    resync notice, for `next()`), so tests see events exactly as they did before `ready`.
    """

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ready: str | None = None
        self._before_ready: list[dict[str, Any]] = []

    async def start(self, timeout: float = RECEIVE_TIMEOUT) -> Socket:
        while True:
            frame = await self._recv(timeout)
            if frame["type"] == "ready":
                self.ready = frame["data"]["lastEventId"]
                return self
            self._before_ready.append(frame)

    async def _recv(self, timeout: float) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        frame: dict[str, Any] = json.loads(raw)
        return frame

    async def next(self, timeout: float = RECEIVE_TIMEOUT) -> dict[str, Any]:
        if self._before_ready:
            return self._before_ready.pop(0)
        return await self._recv(timeout)

    async def next_of(self, *types: str, timeout: float = RECEIVE_TIMEOUT) -> dict[str, Any]:
        """The next frame of one of `types`, skipping others (presence, typing...)."""
        while True:
            frame = await self.next(timeout)
            if frame["type"] in types:
                return frame

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def close(self) -> None:
        await self.ws.close()


async def cookie_socket(server: ServerProcess, cookie: str) -> Socket:
    """A socket opened as the web page opens it: with the session's cookie."""
    ws = await connect(
        server.ws, additional_headers={"Cookie": cookie}, max_queue=None, ping_interval=None
    )
    return await Socket(ws).start()


async def frames_until_closed(sock: Socket) -> tuple[list[dict[str, Any]], int | None]:
    """Every frame read until the server closes the socket, and its close code."""
    frames: list[dict[str, Any]] = []
    try:
        while True:
            frames.append(await sock.next(RECEIVE_TIMEOUT))
    except ConnectionClosed as closed:
        return frames, closed.rcvd.code if closed.rcvd is not None else None


async def close_code(sock: Socket) -> int | None:
    """Read (skipping presence and the like) until the server closes the socket."""
    frames, code = await frames_until_closed(sock)
    assert all(f["type"] != NOTICE for f in frames), "the server's own notice reached a client"
    return code


async def logout_session(server: ServerProcess, cookie: str, csrf: str) -> None:
    """Sign the browser session out, as the web page does."""
    async with httpx.AsyncClient(base_url=server.http, timeout=15) as c:
        resp = await c.post(
            "/api/v1/auth/logout-session", headers={"Cookie": cookie, "X-CSRF-Token": csrf}
        )
    assert resp.status_code == 204, resp.text


@pytest.fixture
async def open_socket() -> AsyncIterator[Any]:
    """Opens sockets for the test and closes them all at the end."""
    opened: list[Socket] = []

    async def _open(server: ServerProcess, user: Api, query: str = "", **kwargs: Any) -> Socket:
        sep = "&" if query else ""
        # The test reads frames when it is ready, not as they arrive: let the client buffer
        # without limit so it keeps answering the server's pings, and leave keepalive to the
        # server (a loaded machine must not make the test client give up on its own).
        kwargs.setdefault("max_queue", None)
        kwargs.setdefault("ping_interval", None)
        ws = await connect(f"{server.ws}?token={user.token}{sep}{query}", **kwargs)
        sock = Socket(ws)
        opened.append(sock)
        return await sock.start()

    yield _open
    for sock in opened:
        await sock.close()


def upgrade_request(port: int, token: str) -> bytes:
    """A WebSocket handshake for the event socket, for tests that speak raw TCP."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /api/v1/ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def masked_text_frame(payload: bytes) -> bytes:
    """One text frame as a client sends it (masked), whatever bytes `payload` holds."""
    assert len(payload) < 126
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked
