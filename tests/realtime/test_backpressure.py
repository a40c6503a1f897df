"""A client that stops reading is cut off; everyone else keeps receiving."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from typing import Any

from tests.realtime.conftest import ServerWith, make_user


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
    carol_reads = asyncio.create_task(_message_ids(carol_ws, count))
    sent = [(await alice.send(chat_id, f"{i} {text}"))["id"] for i in range(count)]

    # Carol got everything while Bob was still not reading.
    assert await carol_reads == sent

    frames = await asyncio.to_thread(_read_until_closed, stalled)
    opcode, payload = frames[-1]
    assert opcode == 0x8, "the server closed the socket"
    assert int.from_bytes(payload[:2], "big") == 1013
    assert len(frames) - 1 < count, "bob was cut off before receiving everything"


async def _message_ids(ws: Any, count: int) -> list[int]:
    return [(await ws.next_of("message.created"))["data"]["id"] for _ in range(count)]


def _handshake_then_stall(port: int, token: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /api/v1/ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _read_until_closed(sock: socket.socket) -> list[tuple[int, bytes]]:
    """Every frame the server sent, until its close frame."""
    buf = sock.makefile("rb")
    frames = []
    while True:
        b0, b1 = buf.read(2)
        length = b1 & 0x7F
        if length == 126:
            length = int.from_bytes(buf.read(2), "big")
        elif length == 127:
            length = int.from_bytes(buf.read(8), "big")
        frames.append((b0 & 0x0F, buf.read(length)))
        if b0 & 0x0F == 0x8:
            sock.close()
            return frames
