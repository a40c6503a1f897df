"""What happens while a socket's start is held up: live delivery coming back, a sign-out.

A new socket reads its start from the log, then goes live. A proxy between one server and
Redis holds the answer to that read, so that a test can make things happen in between in
the order it wants, rather than wait for a race:

- When the process's subscription was cut off and comes back meanwhile, the refill after
  the gap does not know the socket yet, and what was published after the log answered and
  before the new subscription reached neither the read nor the socket: the start must read
  the log on before going live, and a message delivered live meanwhile must not carry the
  socket past the missed one.
- When the browser session that opened the socket signs out meanwhile, the socket closes
  with 4401 at once, and gets nothing of what its start reads.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from parley.realtime.codec import parse_event_id
from tests.fixtures.redis_proxy import RedisProxy
from tests.fixtures.servers import ServerProcess, server_env, start_server
from tests.realtime.conftest import (
    UNAUTHORIZED,
    Api,
    Socket,
    browser_login,
    frames_until_closed,
    logout_session,
    make_user,
)
from tests.realtime.faultkit import wait_until

pytestmark = [pytest.mark.services_only, pytest.mark.timeout(120)]

# The server's Redis commands time out after 2 s: a held answer must reach it before then,
# or the socket is refused (1013) and the test proves nothing.
HOLD_BUDGET_SECONDS = 1.5


@pytest.fixture
def redis_server(private_redis: Any) -> Any:
    return private_redis()


@pytest.fixture
async def proxy(redis_server: Any) -> AsyncIterator[RedisProxy]:
    proxy = await RedisProxy(redis_server.port).start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def two_servers(
    own_database_url: str, redis_server: Any, proxy: RedisProxy, tmp_path: Path
) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    """One server whose Redis connections go through the proxy, and one straight to Redis
    (started in threads: the proxy runs on this loop). Their database is their own: on a
    new Redis the relay republishes the last minute's events before the fast path opens,
    which on the run's database could hold a test's messages back for seconds."""
    started: list[ServerProcess] = []
    try:
        for url in (proxy.url, redis_server.url):
            env = server_env(own_database_url, url, PARLEY_LOG_LEVEL="INFO")
            started.append(await asyncio.to_thread(start_server, env, tmp_path))
        yield started[0], started[1]
    finally:
        for server in started:
            await asyncio.to_thread(server.stop)


async def subscribers(redis_server: Any) -> int:
    """How many connections Redis counts as subscribed to channels."""
    probe = redis_server.probe()
    try:
        return len(await asyncio.to_thread(probe.client_list, _type="pubsub"))
    finally:
        probe.close()


async def log_length(redis_server: Any, user_id: int) -> int:
    """How many events `user_id`'s log holds."""
    probe = redis_server.probe()
    try:
        keys = await asyncio.to_thread(probe.keys, f"*:events:{user_id}")
        assert len(keys) <= 1, keys
        return int(await asyncio.to_thread(probe.xlen, keys[0])) if keys else 0
    finally:
        probe.close()


@dataclass
class HeldStart:
    """Alice, on the proxied server, and Bob, on the other, in a group chat; Alice's new
    socket on the proxied server, whose read of its start waits in the proxy, and one of
    Bob's there."""

    alice: Api
    bob: Api
    chat_id: int
    sock: Socket
    bob_sock: Socket  # Bob's socket on the proxied server, opened before the hold
    cookie: str = ""  # the browser session's, when Alice's socket was opened by one
    csrf: str = ""

    async def close(self) -> None:
        await self.sock.close()
        await self.bob_sock.close()


async def hold_a_start(
    proxied: ServerProcess,
    direct: ServerProcess,
    proxy: RedisProxy,
    redis_server: Any,
    *,
    by_browser: bool = False,
) -> HeldStart:
    """Open Alice's socket (by a browser session's cookie, or else by her token) and return
    once its read of the log went to Redis and the answer is held."""
    tag = uuid.uuid4().hex[:8]
    alice = await make_user(proxied, f"alice_{tag}")
    bob = await make_user(direct, f"bob_{tag}")
    chat_id = await bob.group(alice)
    await wait_until(lambda: _at_least(log_length(redis_server, alice.id), 1), 10, "her log")
    cookie, csrf = await browser_login(proxied, alice.username) if by_browser else ("", "")
    # A first socket loads the log's scripts into this Redis: a script's first call is
    # refused and made again, which would read the log a second time.
    await (await user_socket(proxied, alice)).close()
    bob_sock = await user_socket(proxied, bob)
    proxy.hold_replies_to(f":events:{alice.id}\r\n".encode())
    sock = await user_socket(proxied, alice, cookie=cookie or None, start=False)
    await asyncio.wait_for(proxy.held.wait(), 10)
    return HeldStart(alice, bob, chat_id, sock, bob_sock, cookie, csrf)


async def gets_the_next(held: HeldStart, sock: Socket) -> None:
    """Bob sends one more message, and `sock` gets it next."""
    sent = await held.bob.send(held.chat_id, "and one after")
    assert (await sock.next_of("message.created"))["data"]["id"] == sent["id"]


def budget(seconds: float) -> Callable[[], float]:
    """A function giving the seconds left of `seconds` from now (a little, once none are)."""
    deadline = time.monotonic() + seconds
    return lambda: max(deadline - time.monotonic(), 0.001)


async def until_received(sock: Socket, message_id: int) -> None:
    """Read `sock` until it has the message `message_id`."""
    while (await sock.next_of("message.created"))["data"]["id"] != message_id:
        pass


async def test_a_socket_started_while_live_delivery_comes_back_is_refilled(
    two_servers: tuple[ServerProcess, ServerProcess], proxy: RedisProxy, redis_server: Any
) -> None:
    proxied, direct = two_servers
    await wait_until(lambda: _equals(subscribers(redis_server), 2), 10, "both subscribed")
    held = await hold_a_start(proxied, direct, proxy, redis_server)
    sock = held.sock
    starting = asyncio.create_task(sock.start())
    try:
        left = budget(HOLD_BUDGET_SECONDS)
        # The subscription is cut off, a message is sent and logged while it is, and it
        # comes back.
        assert proxy.cut_subscribers() == 1
        await wait_until(
            lambda: _equals(subscribers(redis_server), 1), left(), "the cut", poll=0.01
        )
        logged = await log_length(redis_server, held.alice.id)
        missed = await held.bob.send(held.chat_id, "sent while the socket was starting")
        await wait_until(
            lambda: _equals(log_length(redis_server, held.alice.id), logged + 1),
            left(),
            "it to be logged",
            poll=0.01,
        )
        proxy.let_new_in()
        await wait_until(
            lambda: _logged(proxied, "listeners refill"), left(), "live delivery", poll=0.01
        )
        # Live again, the process delivers the next message (Bob's socket there gets it)
        # while Alice's start is still held: it must not carry her past the one she missed.
        live = await held.bob.send(held.chat_id, "sent once live delivery was back")
        await asyncio.wait_for(until_received(held.bob_sock, live["id"]), left())

        # Only now does the socket get the answer, which predates both messages.
        proxy.release_replies()
        await asyncio.wait_for(starting, 10)
        got = await sock.next_of("message.created")
        assert got["data"]["id"] == missed["id"]
        assert (await sock.next_of("message.created"))["data"]["id"] == live["id"]
        # Both came with the start, before `ready`: it read the log on after the held answer.
        assert sock.ready is not None
        assert parse_event_id(got["id"]) < parse_event_id(sock.ready)
        await gets_the_next(held, sock)
    finally:
        proxy.release_replies()
        starting.cancel()
        await held.close()
    assert "Traceback" not in proxied.log()


async def test_a_browser_signed_out_while_its_socket_starts_closes_it(
    two_servers: tuple[ServerProcess, ServerProcess], proxy: RedisProxy, redis_server: Any
) -> None:
    proxied, direct = two_servers
    held = await hold_a_start(proxied, direct, proxy, redis_server, by_browser=True)
    try:
        left = budget(HOLD_BUDGET_SECONDS)
        sent = await held.bob.send(held.chat_id, "sent while her socket starts")
        await logout_session(direct, held.cookie, held.csrf)  # the notice crosses processes
        frames, code = await asyncio.wait_for(frames_until_closed(held.sock), left())
        proxy.release_replies()
        assert code == UNAUTHORIZED
        assert frames == []  # no event, no `ready`, no notice: nothing at all
        # The process was live all along: Bob's socket there got the message.
        await asyncio.wait_for(until_received(held.bob_sock, sent["id"]), 10)
    finally:
        proxy.release_replies()
        await held.close()

    # Nothing of the socket was left behind: Alice's next socket starts as any other.
    again = await user_socket(proxied, held.alice)
    try:
        await gets_the_next(held, again)
    finally:
        await again.close()
    assert "Traceback" not in proxied.log()


async def user_socket(
    server: ServerProcess, user: Api, *, cookie: str | None = None, start: bool = True
) -> Socket:
    """A socket of `user`'s, by bearer token or by a browser session's `cookie`; read up to
    `ready` unless not `start`."""
    if cookie is None:
        url, headers = f"{server.ws}?token={user.token}", {}
    else:
        url, headers = server.ws, {"Cookie": cookie}
    ws = await connect(
        url, additional_headers=headers, max_queue=None, ping_interval=None, open_timeout=10
    )
    sock = Socket(ws)
    return await sock.start() if start else sock


async def _equals(count: Any, expected: int) -> bool:
    return bool(await count == expected)


async def _at_least(count: Any, expected: int) -> bool:
    return bool(await count >= expected)


async def _logged(server: ServerProcess, text: str) -> bool:
    return text in server.log()
