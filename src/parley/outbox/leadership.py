"""One relay at a time: a PostgreSQL advisory lock held on a connection of its own.

The lock goes with its connection, so a leader that dies (or loses PostgreSQL) frees it at
once. With SQLite (embedded mode, one process) every relay leads.
"""

from __future__ import annotations

import contextlib

from sqlalchemy import text
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
                self._conn = await self._db.engine.connect()
                taken = await self._conn.scalar(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": RELAY_LOCK_KEY}
                )
                await self._conn.commit()
                if not taken:
                    await self.release()
                    return False
                return True
            await self._conn.execute(text("SELECT 1"))
            await self._conn.commit()
            return True
        except Exception:  # the connection (and with it the lock) is gone
            await self.release()
            return False

    async def release(self) -> None:
        """Give up the lock (closing its connection)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()
