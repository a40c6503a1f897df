"""One relay at a time: a PostgreSQL advisory lock held on a connection of its own.

The lock goes with its connection, so a leader that dies (or loses PostgreSQL) frees it at
once. With SQLite (embedded mode, one process) every relay leads.
"""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from parley.db.engine import Database

# An arbitrary 64-bit key that names Parley's relay lock.
RELAY_LOCK_KEY = 0x7061726C_65790001


class Leadership:
    """Tries to become (and stay) the leader; `is_leader` says whether it is now."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._conn: AsyncConnection | None = None

    async def is_leader(self) -> bool:
        """Take the lock if free, or check the connection holding it still lives."""
        if self._db.is_sqlite:
            return True
        try:
            if self._conn is None:
                return await self._try_to_lead()
            # On the driver: one round trip, where a SQLAlchemy statement costs three
            # (BEGIN, SELECT, COMMIT) twice a second.
            await (await _driver(self._conn)).execute("SELECT 1")
            return True
        except Exception:  # the connection (and with it the lock) is gone
            await self.release()
            return False

    async def _try_to_lead(self) -> bool:
        conn = await self._db.engine.connect()
        try:
            taken = await (await _driver(conn)).fetchval(
                "SELECT pg_try_advisory_lock($1)", RELAY_LOCK_KEY
            )
        except BaseException:
            await _discard(conn)
            raise
        if not taken:
            # It holds no lock: back to the pool, to be tried again next tick. Closing it
            # instead made every process that does not lead open a new PostgreSQL
            # connection twice a second.
            await conn.close()
            return False
        self._conn = conn
        return True

    async def release(self) -> None:
        """Give up the lock (closing its connection)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await _discard(conn)


async def _driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection under `conn`."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None  # a pooled connection in use always has one
    return driver


async def _discard(conn: AsyncConnection) -> None:
    """Close `conn` for good (never back to the pool): a lock may go with it."""
    with contextlib.suppress(Exception):
        await conn.invalidate()
    with contextlib.suppress(Exception):
        await conn.close()
