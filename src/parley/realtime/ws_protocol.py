"""`parley serve`'s WebSocket protocol: uvicorn's own (`websockets-sansio`), lighter per socket.

An idle socket is mostly what the server keeps for it. uvicorn's protocol keeps an
`asyncio.Queue` (four deques and an event) for the two or three messages a socket's ASGI
app ever waits on at once, an `asyncio.Event` for "the transport may be written", and the
handshake's request and response with their headers after the handshake is over (the
`websockets` parser's generator, too, keeps the request as a local for as long as it runs):
~7 KiB of an idle socket. This subclass keeps the same behaviour with a one-waiter inbox, a
flag, and no handshake once it is done. See docs/performance.md, memory per idle socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.frames import Frame
from websockets.http11 import Request
from websockets.protocol import Protocol, State

# The scope extension by which the protocol offers an app its direct text writes.
WRITE_TEXT_EXTENSION = "parley.websocket.write_text"
# How long a socket the server closes (the app's close: a slow consumer's 1013, shutdown's
# 1001; or uvicorn's keepalive timeout) may keep bytes its client has not taken before its
# connection is aborted. A client that reads nothing never takes them: uvicorn's close
# waits for the transport to take writes again, and asyncio's `transport.close()` for the
# buffer to drain, both for ever, keeping the socket open (and its user online) meanwhile.
ABORT_UNREAD_AFTER_CLOSE_SECONDS = 5.0

TextWriter = Callable[[str], bool]


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented text frame carrying `payload` (server to client, RFC 6455
    5.2), its length in the shortest form."""
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", 0x81, size) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


def direct_writer(scope: Mapping[str, Any]) -> TextWriter | None:
    """The socket's direct text writer, when the server offers one (`parley serve` does)."""
    extensions = scope.get("extensions") or {}
    writer: TextWriter | None = extensions.get(WRITE_TEXT_EXTENSION)
    return writer


class Inbox:
    """The events for one socket's app, in order, for one reader at a time (its ASGI
    `receive`): what `asyncio.Queue` does here, without its deques."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[ASGIReceiveEvent] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: ASGIReceiveEvent) -> None:
        """Add an event; wake the reader."""
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        """True when no event is waiting."""
        return not self._items

    async def get(self) -> ASGIReceiveEvent:
        """The next event, waiting for one."""
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)


class Writable:
    """Whether the transport takes writes (its buffer is below the high-water mark): what
    `asyncio.Event` does here, with the waiters' list made only while paused."""

    __slots__ = ("_paused", "_waiters")

    def __init__(self) -> None:
        self._paused = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        """True when writes may go on."""
        return not self._paused

    def set(self) -> None:
        """Writes may go on: wake every writer that waited."""
        self._paused = False
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        """Writes must wait."""
        self._paused = True

    async def wait(self) -> bool:
        """Return once writes may go on."""
        while self._paused:
            waiter = asyncio.get_running_loop().create_future()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(waiter)
            await waiter
        return True


# One server's values of the attributes below, shared by all its sockets.
_per_server: weakref.WeakKeyDictionary[ServerState, dict[str, Any]] = weakref.WeakKeyDictionary()


class PerServer:
    """An attribute that uvicorn's protocol sets on each socket to what it is for every
    socket of the server (its config, app, loop, logger, shared sets): kept once per server.
    (Not `default_headers`: the server renews that list every second, for its `Date`.)
    Setting one to another value than the server's raises: it would be a bug to share it.

    The point is the size of the protocol's `__dict__`: CPython shares the keys of
    instance dicts of up to 29 attributes (~0.3 KiB each), and uvicorn's protocol has 37,
    which makes every socket's a dict of its own (~1.6 KiB).
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, protocol: Any, owner: type | None = None) -> Any:
        if protocol is None:
            return self
        return protocol._server_values[self.name]

    def __set__(self, protocol: Any, value: Any) -> None:
        values: dict[str, Any] = protocol._server_values
        known = values.setdefault(self.name, value)
        if known is not value and known != value:
            raise RuntimeError(f"uvicorn's WebSocket protocol sets {self.name} per socket")


class ParleyWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol with less kept per socket."""

    config = PerServer()
    app = PerServer()
    loop = PerServer()
    logger = PerServer()
    root_path = PerServer()
    asgi_version = PerServer()
    app_state = PerServer()
    connections = PerServer()
    tasks = PerServer()
    close_timeout = PerServer()
    ping_interval = PerServer()
    ping_timeout = PerServer()

    def __init__(
        self,
        config: Any,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        values = _per_server.get(server_state)
        if values is None:
            values = _per_server[server_state] = {}
        self._server_values = values
        super().__init__(config, server_state, app_state, _loop)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Writable()  # type: ignore[assignment]

    def handle_connect(self, event: Request) -> None:
        """uvicorn's, after restarting the frame parser without the request in its frame."""
        conn = self.conn
        # The request is parsed and the parser waits for the first frame. uvicorn's HTTP
        # protocol hands over the handshake alone (a client sends no frame before the
        # server's answer, RFC 6455 4.1, and uvicorn drops any that one sent early), so the
        # parser has read nothing of a frame and a fresh one takes over where it is. Were
        # bytes of a frame already read, the parser would keep its state (and the request).
        if not conn.reader.buffer and not conn.reader.eof:
            conn.parser = Protocol.parse(conn)
            next(conn.parser)
        super().handle_connect(event)
        if not self.close_sent:  # the request was a WebSocket handshake: uvicorn made a scope
            extensions: dict[str, Any] = self.scope["extensions"]
            extensions[WRITE_TEXT_EXTENSION] = self.write_text

    def send_receive_event_to_app(self) -> None:
        """uvicorn's, except for a text message that is not UTF-8: closed with 1007 all the
        same, but that is the client's mistake, logged in one info line. uvicorn logs it
        with `logger.exception`, an error and a traceback per frame, which any signed-in
        client could send in a loop."""
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:  # the app is past `websocket.close`: read on until the reply
            return
        if self.curr_msg_data_type == "text":
            try:
                text = data.decode()
            except UnicodeDecodeError:
                self.logger.info("closed a socket that sent invalid UTF-8 (1007)")
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
            self.queue.put_nowait({"type": "websocket.receive", "text": text})
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": data})
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def write_text(self, text: str) -> bool:
        """Write one text frame to the transport at once, past ASGI's `send`: what a
        `websocket.send` of `text` writes, without its coroutine, message dict, frame
        object and buffer list. For the fan-out, where those cost more than the write.

        Writes nothing and returns False unless the socket is open for it: accepted, not
        closing, the transport taking writes (not paused by a client that stopped reading)
        and no extension negotiated (a compressed frame is `websockets`' to make). The
        caller then sends through ASGI, which waits where it must.
        """
        if (
            self.close_sent
            or self.disconnected
            or not self.handshake_complete
            or self.initial_response is not None
            or not self.writable.is_set()
            or self.conn.state is not State.OPEN
            or self.conn.extensions
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(text_frame(text.encode()))
        return True

    # Every way uvicorn's protocol closes a socket, bounded (ABORT_UNREAD_AFTER_CLOSE_SECONDS):
    # the keepalive giving up, a client's close, a frame it may not send (1007, 1009), the
    # server shutting down, and the app's close (in `send`).

    def keepalive_timeout(self) -> None:
        """uvicorn's, bounded."""
        super().keepalive_timeout()
        self.abort_later_if_unread()

    def handle_close(self, event: Frame) -> None:
        """uvicorn's, bounded."""
        super().handle_close(event)
        self.abort_later_if_unread()

    def handle_parser_exception(self) -> None:
        """uvicorn's, bounded."""
        super().handle_parser_exception()
        self.abort_later_if_unread()

    def shutdown(self) -> None:
        """uvicorn's, bounded."""
        super().shutdown()
        self.abort_later_if_unread()

    def abort_later_if_unread(self) -> None:
        """In `ABORT_UNREAD_AFTER_CLOSE_SECONDS`, abort the connection if bytes still wait."""
        self.loop.call_later(ABORT_UNREAD_AFTER_CLOSE_SECONDS, self.abort_if_unread)

    def abort_if_unread(self) -> None:
        """Abort the connection if bytes still wait for the client (see
        `ABORT_UNREAD_AFTER_CLOSE_SECONDS`); a client that took them all is left to close."""
        if self.disconnected or not self.transport.get_write_buffer_size():
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                # A reset, so that the kernel does not keep the unread bytes either.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    async def send(self, message: ASGISendEvent) -> None:
        """uvicorn's `send`, with a close bounded (`ABORT_UNREAD_AFTER_CLOSE_SECONDS`); once
        the handshake's answer is written, forget the handshake."""
        if message["type"] == "websocket.close":
            self.abort_later_if_unread()
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # Only `send` reads them, for the answer to the handshake.
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]
