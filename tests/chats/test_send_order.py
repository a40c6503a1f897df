"""A chat's messages commit in id order: a reader who has seen message n never later sees a
message below n appear (the web page's unread badge counts on it)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest

from tests.chats.conftest import CHATS, create_group, list_messages
from tests.conftest import PG_ADMIN_URL
from tests.fixtures.apps import make_settings, running_app
from tests.fixtures.http import guarded_client
from tests.fixtures.pg_activity import until_backends
from tests.fixtures.users import register

# SQLite runs one writer at a time, so order holds there by construction; on PostgreSQL it
# depends on the send statement locking the chat before its message takes an id.
pytestmark = pytest.mark.services_only


async def test_a_send_held_up_after_taking_its_place_keeps_later_sends_waiting(
    own_database_url: str, redis_url: str | None
) -> None:
    database_url = own_database_url  # alone on it: its waiting backends are counted
    settings = make_settings(database_url, redis_url)
    async with running_app(settings) as app, guarded_client(app) as c:
        alice = await register(c, "alice")
        bob = await register(c, "bob")
        chat_id = (await create_group(c, alice, bob))["id"]
        name = database_url.rsplit("/", 1)[1]
        admin = PG_ADMIN_URL.replace("+asyncpg", "")
        holder = await asyncpg.connect(f"{admin}/{name}")
        sends: list[asyncio.Task[int]] = []
        try:
            # An open transaction holding Alice's clientId "held" in this chat: her send with
            # that clientId waits on it in the middle of its statement.
            held = holder.transaction()
            await held.start()
            await holder.execute(
                "INSERT INTO messages (chat_id, author_id, text, client_id, created_at)"
                " VALUES ($1, $2, 'held', 'held', now())",
                chat_id,
                alice.id,
            )

            def send(who_headers: dict[str, str], body: dict[str, str]) -> asyncio.Task[int]:
                async def go() -> int:
                    answer = await c.post(
                        f"{CHATS}/{chat_id}/messages", json=body, headers=who_headers
                    )
                    assert answer.status_code == 201, answer.text
                    return int(answer.json()["id"])

                task = asyncio.create_task(go())
                sends.append(task)
                return task

            first = send(alice.headers, {"text": "first", "clientId": "held"})
            await until_backends(database_url, at_least(1), waiting_on_lock=True, unless=first)
            second = send(bob.headers, {"text": "second"})
            await until_backends(database_url, at_least(2), waiting_on_lock=True, unless=second)
            assert not second.done(), "a later send committed while an earlier one was open"
            await held.rollback()
            first_id, second_id = await asyncio.gather(first, second)
        finally:
            for task in sends:
                task.cancel()
            await asyncio.gather(*sends, return_exceptions=True)
            await holder.close()
        assert first_id < second_id
        listed = await list_messages(c, bob, chat_id)
        assert [m["text"] for m in sorted(listed["items"], key=lambda m: m["id"])] == [
            "first",
            "second",
        ]


def at_least(n: int) -> Callable[[int], bool]:
    return lambda count: count >= n
