"""Signing a browser out closes the sockets its session cookie opened, in every process."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis.asyncio as redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.fixtures.servers import ServerProcess
from tests.realtime.conftest import RECEIVE_TIMEOUT, Socket, browser_login, make_user

UNAUTHORIZED = 4401
NOTICE = "parley.session.ended"


async def _cookie_socket(server: ServerProcess, cookie: str) -> Socket:
    ws = await connect(
        server.ws, additional_headers={"Cookie": cookie}, max_queue=None, ping_interval=None
    )
    return await Socket(ws).start()


async def _close_code(sock: Socket) -> int | None:
    """Read (skipping presence and the like) until the server closes the socket."""
    try:
        while True:
            frame = await sock.next(RECEIVE_TIMEOUT)
            assert frame["type"] != NOTICE, "the server's own notice reached a client"
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


async def _logout_session(server: ServerProcess, cookie: str, csrf: str) -> None:
    async with httpx.AsyncClient(base_url=server.http, timeout=15) as c:
        resp = await c.post(
            "/api/v1/auth/logout-session", headers={"Cookie": cookie, "X-CSRF-Token": csrf}
        )
    assert resp.status_code == 204, resp.text


async def test_logout_session_closes_its_sockets_on_every_process(
    server_a: ServerProcess, server_b: ServerProcess, open_socket: object
) -> None:
    alice = await make_user(server_a, "alice")
    bob = await make_user(server_a, "bob")
    chat = await alice.group(bob)
    ending, csrf = await browser_login(server_a, "alice")
    staying, _ = await browser_login(server_b, "alice")
    ended_sockets = [await _cookie_socket(server_a, ending), await _cookie_socket(server_b, ending)]
    other_session = await _cookie_socket(server_b, staying)
    by_token = await open_socket(server_a, alice)  # type: ignore[operator]
    try:
        await _logout_session(server_b, ending, csrf)
        for sock in ended_sockets:
            assert await _close_code(sock) == UNAUTHORIZED
        # The other browser and the token's socket still hear everything, and never see
        # the notice that closed the others (it is the server's own).
        sent = await bob.send(chat, "still here?")
        for sock in (other_session, by_token):
            seen = [await sock.next()]
            while seen[-1]["type"] != "message.created":
                seen.append(await sock.next())
            assert seen[-1]["data"]["id"] == sent["id"]
            assert {frame["type"] for frame in seen} <= {"presence", "message.created"}
    finally:
        for sock in (*ended_sockets, other_session):
            await sock.close()


async def test_a_signed_out_cookie_opens_no_socket(server_a: ServerProcess) -> None:
    await make_user(server_a, "alice")
    cookie, csrf = await browser_login(server_a, "alice")
    await _logout_session(server_a, cookie, csrf)
    async with connect(server_a.ws, additional_headers={"Cookie": cookie}) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == UNAUTHORIZED


@pytest.mark.services_only
async def test_the_notice_is_one_an_older_process_drops(
    server_a: ServerProcess, redis_url: str | None
) -> None:
    """During a rolling upgrade a process of the release before reads the fan-out message
    of the notice too: its recipients must not parse (ASCII user ids, comma-separated), or
    it would pass the notice on to every socket of the user as an ephemeral event."""
    assert redis_url is not None
    await make_user(server_a, "alice")
    cookie, csrf = await browser_login(server_a, "alice")
    client = redis.from_url(redis_url, decode_responses=True)
    pubsub = client.pubsub()
    try:
        await pubsub.psubscribe("*")
        await _logout_session(server_a, cookie, csrf)
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            while True:
                message = await pubsub.get_message(timeout=RECEIVE_TIMEOUT)
                if message and message["type"] == "pmessage" and NOTICE in message["data"]:
                    break
        head = message["data"].split("\n", 1)[0]
        assert not all(part.isdigit() for part in head.split(","))
    finally:
        await pubsub.aclose()
        await client.aclose()
