"""A lean WebSocket client for the fan-out benchmark's receivers.

The `websockets` client costs ~90 µs of CPU per received frame on a slow VM (frame
objects, a queue and a task wake-up per message), which made the receivers take half the
machine the server shares. This client parses frames in `data_received`, synchronously,
and hands each text message to a callback. It offers no extension (no permessage-deflate),
answers pings and a close, and masks what it sends, as RFC 6455 asks of a client. It is
for loopback benchmarks only: no TLS, no redirects, no limits on what the server sends.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Callable
from urllib.parse import urlsplit

TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


class LeanSocket(asyncio.Protocol):
    """One client socket; `on_text` gets every text message, `on_closed` the close code."""

    def __init__(
        self, on_text: Callable[[str], None], on_closed: Callable[[int | None], None]
    ) -> None:
        self._on_text = on_text
        self._on_closed = on_closed
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._open: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._upgraded = False
        self.close_code: int | None = None
        self._closed = asyncio.Event()

    @classmethod
    async def connect(
        cls,
        url: str,
        on_text: Callable[[str], None],
        on_closed: Callable[[int | None], None] = lambda code: None,
    ) -> LeanSocket:
        """Open `url` (ws://host:port/path?query) and complete the handshake."""
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        loop = asyncio.get_running_loop()
        _, socket = await loop.create_connection(lambda: cls(on_text, on_closed), host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        assert socket._transport is not None
        socket._transport.write(
            f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        await socket._open
        return socket

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._upgraded:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self._buffer[: self._buffer.find(b"\r\n")])
            del self._buffer[: end + 4]
            if b" 101 " not in status + b" ":
                self._fail(ConnectionError(f"handshake refused: {status.decode(errors='replace')}"))
                return
            self._upgraded = True
            self._open.set_result(None)
        self._frames()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._open.done():
            self._open.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self._closed.is_set():
            self._closed.set()
            self._on_closed(self.close_code)

    # -- frames ------------------------------------------------------------------------------

    def _frames(self) -> None:
        buffer = self._buffer
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            length, start = second & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, start = struct.unpack_from("!H", buffer, 2)[0], 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, start = struct.unpack_from("!Q", buffer, 2)[0], 10
            if len(buffer) < start + length:
                return
            payload = bytes(buffer[start : start + length])
            del buffer[: start + length]
            self._frame(first & 0x80, first & 0x0F, payload)

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode == PING:
            self._send(PONG, payload)
        elif opcode == CLOSE:
            self.close_code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else None
            self._send(CLOSE, payload[:2])
            if self._transport is not None:
                self._transport.close()
        elif opcode in (TEXT, 0x0):  # a text message, or a continuation of one
            self._fragments.append(payload)
            if fin:
                message = b"".join(self._fragments)
                self._fragments.clear()
                self._on_text(message.decode())

    def _send(self, opcode: int, payload: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        keystream = (mask * (length // 4 + 1))[:length]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")).to_bytes(
            length, "big"
        )
        self._transport.write(header + mask + masked)

    def _fail(self, exc: Exception) -> None:
        if not self._open.done():
            self._open.set_exception(exc)
        if self._transport is not None:
            self._transport.close()

    # -- the caller's side -------------------------------------------------------------------

    def send_text(self, text: str) -> None:
        """Send one text message."""
        self._send(TEXT, text.encode())

    async def close(self, code: int = 1000) -> None:
        """Send a close frame and wait (at most 5 s) for the connection to end."""
        self._send(CLOSE, struct.pack("!H", code))
        try:
            await asyncio.wait_for(self._closed.wait(), 5)
        except TimeoutError:
            if self._transport is not None:
                self._transport.abort()
