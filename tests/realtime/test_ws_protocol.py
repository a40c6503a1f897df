"""`parley serve`'s WebSocket protocol: its one-waiter inbox and its writable flag behave as
the asyncio queue and event that uvicorn's protocol uses in their place."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.protocol import State

from parley.realtime.ws_protocol import Inbox, ParleyWebSocketProtocol, PerServer, Writable

pytestmark = pytest.mark.mode_independent


async def test_the_inbox_gives_events_in_order_and_waits_for_the_next() -> None:
    inbox = Inbox()
    assert inbox.empty()
    inbox.put_nowait({"type": "websocket.connect"})
    inbox.put_nowait({"type": "websocket.receive", "text": "a"})
    assert not inbox.empty()
    assert await inbox.get() == {"type": "websocket.connect"}
    assert await inbox.get() == {"type": "websocket.receive", "text": "a"}
    assert inbox.empty()

    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    assert not reader.done()
    inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
    assert await asyncio.wait_for(reader, 1) == {"type": "websocket.disconnect", "code": 1000}


async def test_a_cancelled_reader_leaves_the_inbox_usable() -> None:
    inbox = Inbox()
    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    inbox.put_nowait({"type": "websocket.receive", "text": "b"})
    assert await asyncio.wait_for(inbox.get(), 1) == {"type": "websocket.receive", "text": "b"}


async def test_writers_wait_while_paused_and_all_go_on_when_resumed() -> None:
    writable = Writable()
    assert writable.is_set()
    assert await writable.wait() is True
    writable.clear()
    assert not writable.is_set()
    writers = [asyncio.ensure_future(writable.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in writers)
    writable.set()
    assert await asyncio.wait_for(asyncio.gather(*writers), 1) == [True, True, True]
    # Paused again, a resume that comes before anyone waits leaves nothing waiting.
    writable.clear()
    writable.set()
    assert await writable.wait() is True


async def test_the_protocol_keeps_all_that_uvicorns_keeps_with_a_smaller_dict() -> None:
    """If uvicorn starts keeping something else per socket, or per socket what it keeps
    per server, this fails rather than the server."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not called")

    config = Config(app, ws_ping_interval=20.0, ws_ping_timeout=20.0)
    config.load()
    state, app_state = ServerState(), {"k": 1}
    loop = asyncio.get_running_loop()
    theirs = WebSocketsSansIOProtocol(config, state, app_state, _loop=loop)
    ours = [ParleyWebSocketProtocol(config, state, app_state, _loop=loop) for _ in range(2)]
    attributes = vars(ParleyWebSocketProtocol).items()
    per_server = {name for name, value in attributes if isinstance(value, PerServer)}
    for protocol in ours:
        assert set(vars(theirs)) == (set(vars(protocol)) - {"_server_values"}) | per_server
        for name in per_server:
            assert getattr(protocol, name) == getattr(theirs, name), name
        assert sys.getsizeof(vars(protocol)) * 3 < sys.getsizeof(vars(theirs))
    assert ours[0].loop is loop
    assert ours[0].app_state is app_state


class _Transport:
    """What the protocol does to its transport while it hands a message to the app."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.written = b""

    def pause_reading(self) -> None:
        self.calls.append("pause_reading")

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.calls.append("close")


@pytest.mark.parametrize(
    ("kind", "frames"),
    [
        ("text", [b'{"type":"ping"}']),
        ("text", [b'{"type":', b'"ping"}']),  # a fragmented message
        ("bytes", [b"\xff"]),
        ("text", [b'{"type":"ping"\xff}']),
    ],
)
async def test_a_message_reaches_the_app_as_uvicorn_hands_it_over(
    kind: str, frames: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    """`send_receive_event_to_app` is ours (for invalid UTF-8): it queues, pauses and
    closes as uvicorn's does, and logs a bad message without an error or a traceback."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not called")

    config = Config(app, log_config=None)
    config.load()
    loop = asyncio.get_running_loop()
    outcomes = []
    uvicorn_log = logging.getLogger("uvicorn.error")  # uvicorn's config may stop propagation
    uvicorn_log.addHandler(caplog.handler)
    try:
        for cls in (WebSocketsSansIOProtocol, ParleyWebSocketProtocol):
            protocol = cls(config, ServerState(), {}, _loop=loop)
            protocol.transport = _Transport()  # type: ignore[assignment]
            protocol.conn.state = State.OPEN
            protocol.curr_msg_data_type = kind  # type: ignore[assignment]
            protocol.frames = list(frames)
            caplog.clear()
            protocol.send_receive_event_to_app()
            events = []
            while not protocol.queue.empty():
                events.append(await protocol.queue.get())
            transport: Any = protocol.transport
            outcomes.append((events, transport.calls, transport.written))
    finally:
        uvicorn_log.removeHandler(caplog.handler)
    theirs, ours = outcomes
    assert ours == theirs
    assert all(r.levelno < logging.WARNING and not r.exc_info for r in caplog.records)
