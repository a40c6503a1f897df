"""The outbox's own statements: unpublished rows in order, marking, pruning."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import cast

from sqlalchemy import BigInteger, Select, Table, any_, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from parley.db.base import UTCDateTime, utcnow
from parley.db.driver import DriverQuery, runs_on_driver
from parley.db.engine import Database
from parley.outbox.items import Pending
from parley.outbox.models import EVENT, JOB, OutboxRow

BATCH = 500


async def unpublished(
    db: Database, *, kind: str, older_than: datetime | None, limit: int = BATCH
) -> list[Pending]:
    """Unpublished rows of one kind in id order, optionally only those created before a time.

    On PostgreSQL one statement on the driver: the leading relay asks twice a tick, every
    half second, busy or idle, and almost always finds nothing; a session's BEGIN, ROLLBACK
    and ORM loading cost several times the SELECT.
    """
    if runs_on_driver(db.engine):
        params = {"kind": kind, "older_than": older_than, "limit": limit}
        records = await _unpublished(db.engine.dialect, older_than is not None).fetch(
            db.engine, params
        )
        return [
            Pending.of_columns(
                record["id"],
                record["kind"],
                record["topic"],
                record["recipients"],
                record["body"],
                record["run_at"],
            )
            for record in records
        ]
    params = {"kind": kind} if older_than is None else {"kind": kind, "older_than": older_than}
    async with db.session() as session:
        stmt = _unpublished_select(older_than is not None).limit(limit)
        return [Pending.of(row) for row in await session.scalars(stmt, params)]


def _unpublished_select(before_a_time: bool) -> Select[OutboxRow]:
    stmt = (
        select(OutboxRow)
        .where(OutboxRow.published_at.is_(None), OutboxRow.kind == bindparam("kind"))
        .order_by(OutboxRow.id)
    )
    if before_a_time:
        stmt = stmt.where(OutboxRow.created_at < bindparam("older_than", type_=UTCDateTime))
    return stmt


@lru_cache(maxsize=16)
def _unpublished(dialect: Dialect, before_a_time: bool) -> DriverQuery:
    return DriverQuery(_unpublished_select(before_a_time).limit(bindparam("limit")), dialect)


async def recently_published_events(session: AsyncSession, since: datetime) -> list[Pending]:
    """Events published after `since`, in id order (to republish after Redis lost a tail)."""
    stmt = (
        select(OutboxRow)
        .where(OutboxRow.kind == EVENT, OutboxRow.published_at >= since)
        .order_by(OutboxRow.id)
    )
    return [Pending.of(row) for row in await session.scalars(stmt)]


async def mark_published(db: Database, row_ids: Sequence[int]) -> None:
    """Record rows as published (committed on return).

    On PostgreSQL one statement on the driver, outside a transaction: every process marks
    what it publishes, a few times a second under load, and a session's BEGIN, COMMIT and
    ORM bulk-update machinery cost more than the UPDATE.
    """
    if not row_ids:
        return
    if runs_on_driver(db.engine):
        # One array parameter: one prepared statement whatever the number of rows.
        await _mark_any(db.engine.dialect).fetchrow(
            db.engine, {"ids": list(row_ids), "now": utcnow()}
        )
        return
    async with db.session() as session:
        await session.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(row_ids), OutboxRow.published_at.is_(None))
            .values(published_at=utcnow())
        )
        await session.commit()


@lru_cache(maxsize=8)
def _mark_any(dialect: Dialect) -> DriverQuery:
    outbox = cast(Table, OutboxRow.__table__)
    statement = (
        update(outbox)
        .where(
            outbox.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger))),
            outbox.c.published_at.is_(None),
        )
        .values(published_at=bindparam("now", type_=UTCDateTime))
    )
    return DriverQuery(statement, dialect)


async def prune(session: AsyncSession, keep_seconds: float) -> int:
    """Delete rows published more than `keep_seconds` ago (and commit); returns how many."""
    cutoff = utcnow() - timedelta(seconds=keep_seconds)
    result = await session.execute(
        delete(OutboxRow).where(
            OutboxRow.published_at.is_not(None), OutboxRow.published_at < cutoff
        )
    )
    await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


__all__ = ["EVENT", "JOB", "mark_published", "prune", "recently_published_events", "unpublished"]
