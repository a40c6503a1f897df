"""Serializing concurrent changes on one row, on PostgreSQL and on SQLite alike."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute


async def lock_row(session: AsyncSession, column: InstrumentedAttribute[int], value: int) -> None:
    """Hold the row whose `column` is `value` until the session's transaction ends, so that
    concurrent transactions doing the same wait for this one.

    PostgreSQL: `FOR NO KEY UPDATE`, which leaves rows that merely reference this one (by a
    foreign key) unblocked. SQLite has no row locks: a no-op write takes the database's
    write lock instead, until the transaction ends.
    """
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(update(column.class_).where(column == value).values({column: column}))
    else:
        await session.execute(select(column).where(column == value).with_for_update(key_share=True))
