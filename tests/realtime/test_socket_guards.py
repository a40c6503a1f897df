"""Who may open a socket, and what a socket refuses: origins of cookie sockets, big frames."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.fixtures.servers import ServerProcess, server_env, start_server
from tests.realtime.conftest import browser_login, make_user, masked_text_frame, upgrade_request


async def _session_cookie(server: ServerProcess, username: str) -> str:
    cookie, _ = await browser_login(server, username)
    return cookie


async def _first_frame_or_close(url: str, **headers: str) -> str | int | None:
    """The first frame's type, or the close code / HTTP status that refused the socket."""
    try:
        async with connect(url, additional_headers=headers) as ws:
            raw = await asyncio.wait_for(ws.recv(), 10)
    except InvalidStatus as refused:
        return refused.response.status_code
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None
    return raw.split('"type":"', 1)[1].split('"', 1)[0]


async def test_cookie_sockets_only_from_our_own_origin(server_a: ServerProcess) -> None:
    await make_user(server_a, "alice")
    cookie = await _session_cookie(server_a, "alice")
    own = f"http://127.0.0.1:{server_a.port}"
    assert await _first_frame_or_close(server_a.ws, Cookie=cookie, Origin=own) == "ready"
    assert await _first_frame_or_close(server_a.ws, Cookie=cookie) == "ready"  # not a browser
    for hostile in ("http://evil.example", "null", f"https://127.0.0.1:{server_a.port}"):
        assert await _first_frame_or_close(server_a.ws, Cookie=cookie, Origin=hostile) in (
            403,
            4403,
        ), hostile


async def test_token_sockets_are_not_origin_checked(server_a: ServerProcess) -> None:
    alice = await make_user(server_a, "alice")
    url = f"{server_a.ws}?token={alice.token}"
    assert await _first_frame_or_close(url, Origin="http://evil.example") == "ready"


async def test_a_frame_over_64_kib_closes_the_socket_with_1009(server_a: ServerProcess) -> None:
    alice = await make_user(server_a, "alice")
    async with connect(f"{server_a.ws}?token={alice.token}", max_size=None) as ws:
        assert '"type":"ready"' in await asyncio.wait_for(ws.recv(), 10)
        await ws.send('{"type":"ping","pad":"' + "x" * (64 * 1024) + '"}')
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    # A frame just under the limit is read as usual.
    async with connect(f"{server_a.ws}?token={alice.token}") as ws:
        assert '"type":"ready"' in await asyncio.wait_for(ws.recv(), 10)
        await ws.send('{"type":"ping","pad":"' + "x" * (60 * 1024) + '"}')
        assert await asyncio.wait_for(ws.recv(), 10) == '{"type":"pong"}'


async def test_cookie_sockets_from_an_origin_in_parley_cors_origins(
    database_url: str, redis_url: str | None, tmp_path: Path
) -> None:
    """A page served elsewhere (PARLEY_CORS_ORIGINS) may open cookie sockets; its
    spelling with a default port or a trailing slash is the same origin; others may not,
    nor a page claiming our origin over https through an untrusted X-Forwarded-Proto."""
    env = server_env(
        database_url,
        redis_url,
        PARLEY_CORS_ORIGINS="https://chat.example, http://app.example:8080/",
        PARLEY_TRUSTED_PROXIES="192.0.2.1",  # this test's client is not a proxy
    )
    server = await asyncio.to_thread(start_server, env, tmp_path)
    try:
        await make_user(server, "alice")
        cookie = await _session_cookie(server, "alice")
        for allowed in (
            "https://chat.example",
            "https://chat.example:443",
            "http://app.example:8080",
        ):
            assert await _first_frame_or_close(server.ws, Cookie=cookie, Origin=allowed) == "ready"
        for refused in ("http://chat.example", "https://app.example:8080", "https://evil.example"):
            assert await _first_frame_or_close(server.ws, Cookie=cookie, Origin=refused) in (
                403,
                4403,
            ), refused
        # A scheme forwarded by a peer that is not a trusted proxy is ignored: it cannot make
        # an https page our own.
        own_https = f"https://127.0.0.1:{server.port}"
        spoofed = await _first_frame_or_close(
            server.ws, Cookie=cookie, Origin=own_https, **{"X-Forwarded-Proto": "https"}
        )
        assert spoofed in (403, 4403)
    finally:
        await asyncio.to_thread(server.stop)


async def test_a_binary_frame_is_answered_with_an_error_and_the_socket_stays(
    server_a: ServerProcess,
) -> None:
    alice = await make_user(server_a, "alice")
    async with connect(f"{server_a.ws}?token={alice.token}") as ws:
        assert '"type":"ready"' in await asyncio.wait_for(ws.recv(), 10)
        await ws.send(b'{"type":"ping"}')
        error = await asyncio.wait_for(ws.recv(), 10)
        assert '"type":"error"' in error
        assert "text frame" in error
        await ws.send('{"type":"ping"}')
        assert await asyncio.wait_for(ws.recv(), 10) == '{"type":"pong"}'
    assert "Traceback" not in server_a.log()


@pytest.mark.parametrize(
    "payload",
    [
        b'{"type":"ping"\xff}',  # a byte that is never UTF-8
        b'{"type":"\xc0\xaf"}',  # an overlong "/"
        b'{"type":"\xed\xa0\x80"}',  # a UTF-16 surrogate
    ],
)
async def test_a_text_frame_that_is_not_utf8_closes_with_1007_and_logs_no_error(
    server_a: ServerProcess, payload: bytes
) -> None:
    """The client's mistake, not the server's: no error line, no traceback (any signed-in
    client could send one per frame)."""
    alice = await make_user(server_a, "alice")
    logged = len(server_a.log())
    port, token = server_a.port, alice.token
    assert await asyncio.to_thread(_close_code_after_text_frame, port, token, payload) == 1007
    log = server_a.log()[logged:]
    assert "Traceback" not in log
    levels = [json.loads(line).get("level") for line in log.splitlines() if line.startswith("{")]
    assert not {"error", "critical"} & set(levels), log


def _close_code_after_text_frame(port: int, token: str, payload: bytes) -> int:
    """Open a socket, read `ready`, send `payload` as one text frame: the close code the
    server answers with (the server logs before it writes the close frame)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(upgrade_request(port, token))
        stream = sock.makefile("rb")
        assert stream.readline().startswith(b"HTTP/1.1 101")
        while stream.readline() != b"\r\n":
            pass
        assert b'"type":"ready"' in _read_frame(stream)[1]
        sock.sendall(masked_text_frame(payload))
        while True:
            opcode, data = _read_frame(stream)
            if opcode == 0x8:
                return int.from_bytes(data[:2], "big")


def _read_frame(stream: Any) -> tuple[int, bytes]:
    """One unmasked frame from the server: its opcode and payload."""
    head = stream.read(2)
    assert len(head) == 2, "the server closed the connection without a close frame"
    length = head[1] & 0x7F
    if length == 126:
        length = int.from_bytes(stream.read(2), "big")
    elif length == 127:
        length = int.from_bytes(stream.read(8), "big")
    return head[0] & 0x0F, stream.read(length)
