"""A client that stops reading is cut off; everyone else keeps receiving."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.realtime.conftest import ServerWith, make_user, masked_text_frame, upgrade_request


async def test_stalled_client_is_disconnected_without_holding_up_others(
    server_with: ServerWith, open_socket: Any
) -> None:
    server = server_with(PARLEY_WS_SEND_QUEUE_SIZE="16")
    alice = await make_user(server, "alice")
    bob = await make_user(server, "bob")
    carol = await make_user(server, "carol")
    chat_id = await alice.group(bob, carol)

    # Bob's client completes the handshake and then reads nothing, with a tiny receive buffer.
    stalled = await asyncio.to_thread(_handshake_then_stall, server.port, bob.token)
    carol_ws = await open_socket(server, carol)

    # The kernel lets a loopback sender buffer up to 4 MiB: send more than that (16 KiB a frame).
    text = "\N{GRINNING FACE}" * 3990
    count = 400
    # Carol reads as a live client does, while the messages are being sent.
    presence: list[dict[str, Any]] = []
    carol_reads = asyncio.create_task(_message_ids(carol_ws, count, presence))
    sent = [(await alice.send(chat_id, f"{i} {text}"))["id"] for i in range(count)]

    # Carol got everything while Bob was still not reading.
    assert await carol_reads == sent

    # A close frame waits behind what Bob does not read, for ever: the server aborts his
    # connection soon after, and so lets go of it, of its buffers and of Bob's presence,
    # while Bob's client still has not read nor closed anything.
    metrics = await _metrics_once(
        server.http,
        lambda m: m["parley_ws_slow_consumers_total"] >= 1 and m["parley_ws_connections"] == 1,
    )
    assert metrics["parley_ws_slow_consumers_total"] == 1
    offline = {"userId": bob.id, "status": "offline"}
    while offline not in [frame["data"] for frame in presence]:
        presence.append(await carol_ws.next_of("presence"))

    frames = await asyncio.to_thread(_read_until_gone, stalled)
    texts = [payload for opcode, payload in frames if opcode == 0x1]
    assert len(texts) < count, "bob was cut off before receiving everything"
    if frames and frames[-1][0] == 0x8:  # had the close frame got through, it says why
        assert int.from_bytes(frames[-1][1][:2], "big") == 1013


async def _message_ids(ws: Any, count: int, presence: list[dict[str, Any]]) -> list[int]:
    """The ids of the next `count` messages; presence frames meanwhile go to `presence`."""
    ids: list[int] = []
    while len(ids) < count:
        frame = await ws.next_of("message.created", "presence")
        if frame["type"] == "presence":
            presence.append(frame)
        else:
            ids.append(frame["data"]["id"])
    return ids


async def _metrics_once(
    base: str, condition: Callable[[dict[str, float]], bool], timeout: float = 30
) -> dict[str, float]:
    """The server's unlabelled metrics, polled until `condition` holds (or the deadline)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        while True:
            text = (await client.get("/metrics")).text
            metrics = {
                name: float(value)
                for name, _, value in (line.partition(" ") for line in text.splitlines())
                if value and not name.startswith("#") and "{" not in name
            }
            if condition(metrics) or time.monotonic() > deadline:
                assert condition(metrics), {k: v for k, v in metrics.items() if "_ws_" in k}
                return metrics
            await asyncio.sleep(0.1)  # polling another process's state: no event to await


def _handshake_then_stall(port: int, token: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    sock.sendall(upgrade_request(port, token))
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _read_until_gone(sock: socket.socket) -> list[tuple[int, bytes]]:
    """Every whole frame the server sent, until its close frame or the end of the
    connection (EOF, or a reset)."""
    buf = sock.makefile("rb")
    frames: list[tuple[int, bytes]] = []
    try:
        while True:
            head = buf.read(2)
            if len(head) < 2:
                return frames
            length = head[1] & 0x7F
            if length in (126, 127):
                size = 2 if length == 126 else 8
                length = int.from_bytes(buf.read(size), "big")
            payload = buf.read(length)
            if len(payload) < length:
                return frames
            frames.append((head[0] & 0x0F, payload))
            if head[0] & 0x0F == 0x8:
                return frames
    except ConnectionResetError:
        return frames
    finally:
        sock.close()


async def test_a_client_that_reads_nothing_is_dropped_by_the_keepalive(
    server_with: ServerWith,
) -> None:
    """With room in its backlog (no slow-consumer close), a client that reads nothing, not
    even pings, is given up by the keepalive and its connection goes, unread bytes and all."""
    server = server_with(PARLEY_WS_SEND_QUEUE_SIZE="100000", PARLEY_WS_HEARTBEAT_SECONDS="4")
    alice = await make_user(server, "alice")
    bob = await make_user(server, "bob")
    chat_id = await alice.group(bob)
    stalled = await asyncio.to_thread(_handshake_then_stall, server.port, bob.token)
    # More than the kernel buffers (see above), sent before the first ping is due.
    text = "\N{GRINNING FACE}" * 3990
    for batch in range(20):
        await asyncio.gather(*(alice.send(chat_id, f"{batch} {i} {text}") for i in range(20)))
    metrics = await _metrics_once(server.http, lambda m: m["parley_ws_connections"] == 0)
    assert metrics["parley_ws_slow_consumers_total"] == 0
    frames = await asyncio.to_thread(_read_until_gone, stalled)
    assert len(frames) < 400


async def test_a_client_that_reads_nothing_and_sends_a_bad_frame_is_dropped(
    server_with: ServerWith,
) -> None:
    """Closed for a frame it may not send (1007, not UTF-8), a client that reads nothing
    cannot take the close frame either: its connection goes all the same."""
    server = server_with(PARLEY_WS_SEND_QUEUE_SIZE="100000", PARLEY_WS_HEARTBEAT_SECONDS="60")
    alice = await make_user(server, "alice")
    bob = await make_user(server, "bob")
    chat_id = await alice.group(bob)
    stalled = await asyncio.to_thread(_handshake_then_stall, server.port, bob.token)
    text = "\N{GRINNING FACE}" * 3990  # more than the kernel buffers, as above
    for batch in range(20):
        await asyncio.gather(*(alice.send(chat_id, f"{batch} {i} {text}") for i in range(20)))
    await asyncio.to_thread(stalled.sendall, masked_text_frame(b'{"type":"\xff"}'))
    # The app is done with the socket at once (the gauge falls); the connection, with the
    # bytes it holds for the client, is what must go too.
    client_port = stalled.getsockname()[1]
    deadline = time.monotonic() + 30
    while _server_holds(server.port, client_port):
        assert time.monotonic() < deadline, "the server still holds the connection"
        await asyncio.sleep(0.1)  # polling the kernel's table: no event to await
    frames = await asyncio.to_thread(_read_until_gone, stalled)
    assert len(frames) < 400


def _server_holds(server_port: int, client_port: int) -> bool:
    """Whether the server's end of the connection from `client_port` is still open."""
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote = row.split()[1:3]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == (
            client_port
        ):
            return True
    return False
