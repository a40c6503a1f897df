"""permessage-deflate is off unless PARLEY_WS_COMPRESSION turns it on."""

from __future__ import annotations

from typing import Any

from tests.fixtures.servers import ServerProcess
from tests.realtime.conftest import ServerWith, make_user

EXTENSIONS = "Sec-WebSocket-Extensions"


async def test_sockets_are_not_compressed_by_default(
    server_a: ServerProcess, open_socket: Any
) -> None:
    alice = await make_user(server_a, "alice")
    # The client offers permessage-deflate, as browsers do; the server declines.
    ws = await open_socket(server_a, alice)
    assert ws.ws.response.headers.get(EXTENSIONS) is None
    chat_id = await alice.group(title="notes")
    sent = await alice.send(chat_id, "plain")
    assert (await ws.next_of("message.created"))["data"]["id"] == sent["id"]


async def test_compression_can_be_turned_on(server_with: ServerWith, open_socket: Any) -> None:
    compressing_server = server_with(PARLEY_WS_COMPRESSION="true")
    alice = await make_user(compressing_server, "alice")
    ws = await open_socket(compressing_server, alice)
    assert "permessage-deflate" in ws.ws.response.headers.get(EXTENSIONS, "")
    chat_id = await alice.group(title="notes")
    sent = await alice.send(chat_id, "squeezed " * 200)
    frame = await ws.next_of("message.created")
    assert frame["data"]["id"] == sent["id"]
    assert frame["data"]["text"] == "squeezed " * 200
