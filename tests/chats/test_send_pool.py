"""The send path takes its connection from the app's pool and gives it back properly, even
when the pool must close it (an overflow connection returned to a full pool)."""

from __future__ import annotations

import asyncio

import pytest

from tests.chats.conftest import create_group
from tests.fixtures.apps import make_settings, running_app
from tests.fixtures.http import guarded_client
from tests.fixtures.pg_activity import until_backends
from tests.fixtures.users import register

pytestmark = pytest.mark.services_only  # the one-statement send path is PostgreSQL's


async def test_sends_beyond_the_pool_close_their_overflow_connections(
    own_database_url: str, redis_url: str | None, capfd: pytest.CaptureFixture[str]
) -> None:
    database_url = own_database_url  # alone on it: its backends are counted
    settings = make_settings(database_url, redis_url, database_pool_size=1, database_max_overflow=8)
    async with running_app(settings) as app, guarded_client(app) as c:
        alice = await register(c, "alice")
        bob = await register(c, "bob")
        chat_id = (await create_group(c, alice, bob))["id"]

        async def send(n: int) -> int:
            resp = await c.post(
                f"/api/v1/chats/{chat_id}/messages",
                json={"text": f"message {n}", "clientId": f"c{n}"},
                headers=alice.headers,
            )
            return resp.status_code

        for _ in range(3):
            statuses = await asyncio.gather(*(send(n) for n in range(24)))
            assert set(statuses) <= {200, 201}, statuses
        listed = await c.get(
            f"/api/v1/chats/{chat_id}/messages", params={"limit": 100}, headers=alice.headers
        )
        assert len(listed.json()["items"]) == 24
        # Closed, not left open: the pool's one connection (held by the outbox relay's
        # leadership) and at most a background statement's stay. A backend whose client
        # closed it leaves pg_stat_activity a moment later: wait for that, within a bound.
        await until_backends(database_url, lambda count: count <= 2)
    logged = capfd.readouterr()
    assert "closing connection" not in logged.out + logged.err
