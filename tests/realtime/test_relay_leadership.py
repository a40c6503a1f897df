"""One outbox relay leads per database (a PostgreSQL advisory lock); the other processes
try again every tick, on a pooled connection they keep, and one of them takes over when the
leader goes."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import pytest

from tests.fixtures.apps import make_settings, running_app
from tests.fixtures.pg_activity import until_rows

pytestmark = pytest.mark.services_only  # leadership is PostgreSQL's; SQLite's relay leads

TICK_SECONDS = 0.1
# The backend holding the relay's advisory lock in the test's database.
LOCK_HOLDER = """
    SELECT a.pid, a.backend_start FROM pg_locks l
    JOIN pg_database d ON d.oid = l.database
    JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE d.datname = $1 AND l.locktype = 'advisory' AND l.granted
"""
# Backends whose last statement was a try for the lock, done.
TRIES = """
    SELECT pid, backend_start, state_change FROM pg_stat_activity
    WHERE datname = $1 AND state = 'idle' AND query LIKE '%pg_try_advisory_lock%'
"""


async def test_a_process_that_does_not_lead_keeps_its_connection_and_takes_over(
    own_database_url: str, redis_url: str | None
) -> None:
    url = own_database_url  # alone on it: its backends are the test's
    settings = make_settings(url, redis_url, outbox_relay_interval_seconds=TICK_SECONDS)
    async with running_app(settings) as first:
        holders = await until_rows(url, LOCK_HOLDER, lambda rows: len(rows) == 1)
        leader = holders[0]["pid"]
        async with running_app(settings):
            tries: dict[int, set[datetime]] = {}  # backend: when it tried
            born: dict[int, datetime] = {}

            def three_tries_seen(rows: list[asyncpg.Record]) -> bool:
                for row in rows:
                    if row["pid"] != leader:
                        tries.setdefault(row["pid"], set()).add(row["state_change"])
                        born[row["pid"]] = row["backend_start"]
                return sum(len(times) for times in tries.values()) >= 3

            await until_rows(
                url,
                TRIES,
                three_tries_seen,
                meaning="no backend stayed after its try for the lock (closed after each?)",
            )
            # No try opened a connection for itself: every backend that tried was there
            # before the first try. Before, each try's connection was closed after it and
            # the next tick opened a new one (a new PostgreSQL backend twice a second).
            first_try = min(min(times) for times in tries.values())
            assert all(born[pid] <= first_try for pid in tries), (tries, born)
            assert [r["pid"] for r in await until_rows(url, LOCK_HOLDER, bool)] == [leader]

            relay = first.state.resources.outbox.relay
            await relay.close()  # the leader's lock goes with its connection
            holders = await until_rows(
                url, LOCK_HOLDER, lambda rows: bool(rows) and rows[0]["pid"] != leader
            )
            # Taken on a connection the follower already had.
            assert holders[0]["backend_start"] <= first_try, (holders, first_try)
