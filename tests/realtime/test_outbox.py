"""The outbox: what the fast path leaves behind is relayed, once, and published rows go away.

These tests write outbox rows as a process that committed and died before publishing would
have left them, and watch the app's bus: the relay must publish each row once, in id order.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from parley.db.base import utcnow
from parley.outbox import emit_row
from parley.outbox.models import OutboxRow
from parley.realtime.bus import Appended, LogEvent
from parley.realtime.codec import encode_body
from tests.chats.conftest import create_group, send
from tests.conftest import truncate_all
from tests.fixtures.apps import make_settings, running_app
from tests.fixtures.http import guarded_client
from tests.fixtures.users import Account, register
from tests.jobs.conftest import listening, wait_for


async def _orphans(app: Any, user_id: int, count: int) -> list[int]:
    """Committed event rows that nobody published (their process died after the commit)."""
    ids = []
    async with app.state.resources.db.sessionmaker() as session:  # no publisher hand-over
        for n in range(count):
            row = emit_row([user_id], "chat.updated", {"n": n})
            row.created_at = utcnow() - timedelta(seconds=30)
            session.add(row)
            await session.flush()
            ids.append(row.id)
        await session.commit()
    return ids


async def test_the_relay_publishes_rows_a_dead_process_left_in_order(
    app: Any, alice: Account
) -> None:
    async with listening(app, alice.id) as events:
        await _orphans(app, alice.id, 5)
        got = [await events.next("chat.updated") for _ in range(5)]
    assert [d["n"] for d in got] == [0, 1, 2, 3, 4]

    async def all_published() -> bool:
        async with app.state.resources.db.session() as session:
            left = await session.scalar(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.published_at.is_(None))
            )
        return left == 0

    await wait_for(all_published, what="the relay to mark its rows published")


async def test_a_row_is_appended_once_however_often_it_is_published(
    app: Any, alice: Account
) -> None:
    bus = app.state.resources.bus
    body = encode_body("x", {})
    event = LogEvent(row_id=10**12 + 1, recipients=[alice.id], body=body, event_type="x")
    async with listening(app, alice.id) as events:
        assert await bus.append([event], gated=False) == [Appended.LOGGED]
        assert await bus.append([event], gated=False) == [Appended.DUPLICATE]
        assert await bus.append([event, event], gated=False) == [Appended.DUPLICATE] * 2
        await events.next("x")
        assert [f for f in events.pending() if f["type"] == "x"] == []


async def test_published_rows_are_pruned(own_database_url: str, redis_url: str | None) -> None:
    """By the leading relay: on a database of its own, this app's."""
    settings = make_settings(own_database_url, redis_url, outbox_keep_published_seconds=0.1)
    async with running_app(settings) as application, guarded_client(application) as client:
        alice = await register(client, "alice")
        bob = await register(client, "bob")
        chat = await create_group(client, alice, bob)
        for n in range(3):
            await send(client, alice, chat["id"], f"m{n}")

        async def outbox_empty() -> bool:
            async with application.state.resources.db.session() as session:
                return await session.scalar(select(func.count()).select_from(OutboxRow)) == 0

        await wait_for(outbox_empty, what="published rows to be pruned")


@pytest.mark.services_only
async def test_two_deployments_sharing_a_redis_never_meet(
    database_url: str, own_database_url: str, redis_url: str | None
) -> None:
    """Same user ids, same outbox row ids, one Redis database: each deployment's events
    reach its own users only, and neither takes the other's rows for published ones."""
    await truncate_all(database_url)  # user ids start over, as in the other database
    first = make_settings(database_url, redis_url)
    second = make_settings(own_database_url, redis_url)
    async with (
        running_app(first) as app_a,
        running_app(second) as app_b,
        guarded_client(app_a) as a,
        guarded_client(app_b) as b,
    ):
        alice_a, bob_a = await register(a, "alice"), await register(a, "bob")
        alice_b, bob_b = await register(b, "alice"), await register(b, "bob")
        async with listening(app_a, bob_a.id) as in_a, listening(app_b, bob_b.id) as in_b:
            for client, owner, member, text in (
                (a, alice_a, bob_a, "from deployment a"),
                (b, alice_b, bob_b, "from deployment b"),
            ):
                chat = await client.post(
                    "/api/v1/chats",
                    json={"type": "group", "memberIds": [member.id]},
                    headers=owner.headers,
                )
                sent = await client.post(
                    f"/api/v1/chats/{chat.json()['id']}/messages",
                    json={"text": text},
                    headers=owner.headers,
                )
                assert sent.status_code == 201, sent.text
            got_a = await in_a.next("message.created")
            got_b = await in_b.next("message.created")
            stray = [f for f in in_a.pending() + in_b.pending() if f["type"] == "message.created"]
    assert got_a["text"] == "from deployment a"
    assert got_b["text"] == "from deployment b"
    assert stray == [], "an event of the other deployment"
