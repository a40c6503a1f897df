"""Resume after a disconnect: replay in order, then live, with no gap and no duplicate."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import pytest

from tests.fixtures.apps import LOG_MAX_EVENTS
from tests.fixtures.servers import ServerProcess
from tests.realtime.conftest import make_user


async def test_reconnect_with_last_event_id_replays_what_was_missed(
    server_a: ServerProcess, server_b: ServerProcess, open_socket: Any
) -> None:
    alice = await make_user(server_a, "alice")
    bob = await make_user(server_a, "bob")
    chat_id = await alice.group(bob)
    first = await open_socket(server_b, bob)
    await alice.send(chat_id, "before")
    seen = await first.next_of("message.created")
    await first.close()

    missed = [await alice.send(chat_id, f"missed {i}") for i in range(5)]

    again = await open_socket(server_a, bob, f"lastEventId={seen['id']}")
    replayed = [await again.next_of("message.created") for _ in range(5)]
    assert [e["data"]["id"] for e in replayed] == [m["id"] for m in missed]

    live = await alice.send(chat_id, "live again")
    assert (await again.next_of("message.created"))["data"]["id"] == live["id"]


async def test_resume_while_messages_keep_arriving_has_no_gap_and_no_duplicate(
    server_a: ServerProcess, server_b: ServerProcess, open_socket: Any
) -> None:
    alice = await make_user(server_a, "alice")
    bob = await make_user(server_a, "bob")
    chat_id = await alice.group(bob)
    total = LOG_MAX_EVENTS // 2
    first = await open_socket(server_b, bob)
    sender_started = asyncio.Event()
    sent: list[int] = []

    async def keep_sending() -> None:
        for i in range(total):
            sent.append((await alice.send(chat_id, f"n{i}"))["id"])
            sender_started.set()

    sender = asyncio.create_task(keep_sending())
    await sender_started.wait()
    got: list[dict[str, Any]] = [await first.next_of("message.created")]
    await first.close()  # drop the connection in the middle of the stream

    second = await open_socket(server_a, bob, f"lastEventId={got[-1]['id']}")
    await sender
    while len(got) < total:
        got.append(await second.next_of("message.created"))

    received = [e["data"]["id"] for e in got]
    assert received == sent, "every message exactly once, in order"
    event_ids = [e["id"] for e in got]
    assert len(set(event_ids)) == total


async def test_an_id_older_than_the_log_asks_for_a_resync(
    server_a: ServerProcess, open_socket: Any
) -> None:
    alice = await make_user(server_a, "alice")
    bob = await make_user(server_a, "bob")
    chat_id = await alice.group(bob)
    sock = await open_socket(server_a, bob)
    await alice.send(chat_id, "first")
    first = await sock.next_of("message.created")
    # The test servers keep LOG_MAX_EVENTS per user with no age allowance: push the first out.
    for i in range(LOG_MAX_EVENTS * 2):
        await alice.send(chat_id, f"filler {i}")
    for _ in range(LOG_MAX_EVENTS * 2):
        await sock.next_of("message.created")

    stale = await open_socket(server_a, bob, f"lastEventId={first['id']}")
    assert (await stale.next())["type"] == "resync.required"
    live = await alice.send(chat_id, "after resync")
    assert (await stale.next_of("message.created"))["data"]["id"] == live["id"]


async def test_a_malformed_last_event_id_asks_for_a_resync(
    server_a: ServerProcess, open_socket: Any
) -> None:
    bob = await make_user(server_a, "bob")
    sock = await open_socket(server_a, bob, "lastEventId=garbage")
    assert (await sock.next())["type"] == "resync.required"


@pytest.mark.parametrize(
    "last_event_id",
    [
        "\N{SUPERSCRIPT TWO}-0",  # str.isdigit() says yes, int() says no
        "\N{ARABIC-INDIC DIGIT ONE}-\N{ARABIC-INDIC DIGIT ZERO}",  # int() reads it, Redis not
        "\N{FULLWIDTH DIGIT ONE}-\N{FULLWIDTH DIGIT ZERO}",
        "9" * 38 + "-0",
        f"{2**64}-0",  # one past an unsigned 64-bit part
        f"1714556400123-{2**64}",
        "1714556400123-" + "9" * 20,
        f"{2**64 - 1}-{2**64 - 1}",  # well-formed, the largest: not a position of the log
    ],
)
async def test_an_id_no_log_can_hold_asks_for_a_resync(
    server_a: ServerProcess, open_socket: Any, last_event_id: str
) -> None:
    """Ids of non-ASCII digits or with a part beyond Redis's unsigned 64 bits are bogus ids
    like any other: `resync.required`, then `ready`, and the socket is live."""
    bob = await make_user(server_a, "bob")
    sock = await open_socket(server_a, bob, f"lastEventId={quote(last_event_id)}")
    assert (await sock.next())["type"] == "resync.required"
    assert sock.ready is not None
    await sock.send({"type": "ping"})
    assert await sock.next() == {"type": "pong"}


async def test_another_users_event_id_asks_for_a_resync(
    server_a: ServerProcess, open_socket: Any
) -> None:
    """An id is a position in one user's log only: `ready` never echoes one it does not hold."""
    alice = await make_user(server_a, "alice")
    bob = await make_user(server_a, "bob")
    carol = await make_user(server_a, "carol")
    chat_id = await alice.group(bob)
    watching = await open_socket(server_a, bob)
    await alice.send(chat_id, "for bob")
    bobs_id = (await watching.next_of("message.created"))["id"]
    sock = await open_socket(server_a, carol, f"lastEventId={bobs_id}")
    assert (await sock.next())["type"] == "resync.required"
    assert sock.ready != bobs_id


async def test_a_socket_that_saw_no_event_resumes_from_its_ready_position(
    server_a: ServerProcess, server_b: ServerProcess, open_socket: Any
) -> None:
    """Silence is never a gap: the `ready` id alone is enough to resume from."""
    alice = await make_user(server_a, "alice")
    bob = await make_user(server_a, "bob")
    quiet = await open_socket(server_b, bob)
    assert quiet.ready is not None
    await quiet.close()  # it never got an event

    chat_id = await alice.group(bob)
    missed = await alice.send(chat_id, "while bob was away")

    back = await open_socket(server_a, bob, f"lastEventId={quiet.ready}")
    assert (await back.next_of("chat.created"))["data"]["id"] == chat_id
    assert (await back.next_of("message.created"))["data"]["id"] == missed["id"]
    # Replayed before `ready`, or (when the relay published them a moment later, the fast
    # path being closed) live after it: either way nothing was missed.
    assert back.ready is not None


async def test_ready_carries_the_newest_event_id(server_a: ServerProcess, open_socket: Any) -> None:
    alice = await make_user(server_a, "alice")
    bob = await make_user(server_a, "bob")
    chat_id = await alice.group(bob)
    watching = await open_socket(server_a, bob)
    await alice.send(chat_id, "one")
    newest = await watching.next_of("message.created")
    fresh = await open_socket(server_a, bob)
    assert fresh.ready == newest["id"]
    replayed = await open_socket(server_a, bob, f"lastEventId={newest['id']}")
    assert replayed.ready == newest["id"]
