"""Signing a browser out closes the sockets its session cookie opened, in every process."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.fixtures.servers import ServerProcess
from tests.realtime.conftest import (
    NOTICE,
    RECEIVE_TIMEOUT,
    UNAUTHORIZED,
    browser_login,
    close_code,
    cookie_socket,
    logout_session,
    make_user,
)


async def test_logout_session_closes_its_sockets_on_every_process(
    server_a: ServerProcess, server_b: ServerProcess, open_socket: object
) -> None:
    alice = await make_user(server_a, "alice")
    bob = await make_user(server_a, "bob")
    chat = await alice.group(bob)
    ending, csrf = await browser_login(server_a, "alice")
    staying, _ = await browser_login(server_b, "alice")
    ended_sockets = [await cookie_socket(server_a, ending), await cookie_socket(server_b, ending)]
    other_session = await cookie_socket(server_b, staying)
    by_token = await open_socket(server_a, alice)  # type: ignore[operator]
    try:
        await logout_session(server_b, ending, csrf)
        for sock in ended_sockets:
            assert await close_code(sock) == UNAUTHORIZED
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
    await logout_session(server_a, cookie, csrf)
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
        await logout_session(server_a, cookie, csrf)
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
