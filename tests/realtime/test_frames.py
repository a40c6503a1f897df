"""Frames `parley serve` writes straight to the transport (`ws_protocol.text_frame`): a
client's WebSocket parser reads them as the text that was written, whatever its length."""

from __future__ import annotations

from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from parley.realtime.ws_protocol import text_frame
from tests.fixtures.servers import ServerProcess
from tests.realtime.conftest import make_user


def _client_reads(data: bytes) -> list[Frame]:
    client = ClientProtocol(parse_uri("ws://example/"), state=State.OPEN, max_size=None)
    client.receive_data(data)
    return [e for e in client.events_received() if isinstance(e, Frame)]


@pytest.mark.mode_independent
@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_a_text_frame_of_any_length_reads_back_whole(size: int) -> None:
    payload = b"x" * size
    (frame,) = _client_reads(text_frame(payload))
    assert frame.opcode is Opcode.TEXT
    assert frame.fin
    assert bytes(frame.data) == payload


@pytest.mark.mode_independent
@pytest.mark.parametrize(("size", "header"), [(125, 2), (126, 4), (65535, 4), (65536, 10)])
def test_the_length_takes_its_shortest_form(size: int, header: int) -> None:
    assert len(text_frame(b"x" * size)) == size + header


@pytest.mark.mode_independent
def test_frames_written_back_to_back_read_as_separate_messages() -> None:
    texts = [b"a", b"b" * 300, b"c" * 70_000]
    frames = _client_reads(b"".join(text_frame(t) for t in texts))
    assert [bytes(f.data) for f in frames] == texts


async def test_events_of_every_size_reach_the_socket_intact(
    server_a: ServerProcess, open_socket: Any
) -> None:
    """Through the server's direct writes (small, 16-bit length, multi-byte text) and the
    frames it writes itself (pong)."""
    alice = await make_user(server_a, "alice")
    bob = await make_user(server_a, "bob")
    chat = await alice.group(bob)
    sock = await open_socket(server_a, bob)
    texts = ["a", "é" * 2000, "\N{GRINNING FACE}" * 4000, "x" * 4000]
    for text in texts:
        await alice.send(chat, text)
    received = [(await sock.next_of("message.created"))["data"]["text"] for _ in texts]
    assert received == texts
    await sock.send({"type": "ping"})
    assert (await sock.next_of("pong"))["type"] == "pong"
