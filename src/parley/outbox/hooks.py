"""Hands the rows a session commits to the process's publisher, and waits for them.

`install` wires a `Database`: every `OutboxRow` flushed in a transaction is handed to the
publisher when that transaction commits (and forgotten if it rolls back), and leaving
`Database.session()` waits until the rows that session committed are published (or held
back for the relay, or `wait_seconds` passed). Services therefore only call `emit` or
`enqueue`; they never publish nor wait themselves.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from parley.db.engine import Database
from parley.outbox.items import Pending
from parley.outbox.models import OutboxRow
from parley.outbox.publisher import OutboxPublisher

_FLUSHED = "parley.outbox.flushed"
_WAITING = "parley.outbox.waiting"
# The publisher of each database's sessions (each Database has a session class of its own).
_publishers: weakref.WeakKeyDictionary[type[Session], OutboxPublisher] = weakref.WeakKeyDictionary()


def install(db: Database, publisher: OutboxPublisher) -> None:
    """Publish the outbox rows of every transaction of `db` once it commits."""

    def collect(session: Session, flush_context: Any) -> None:
        rows = [obj for obj in session.new if isinstance(obj, OutboxRow)]
        if rows:
            session.info.setdefault(_FLUSHED, []).extend(rows)

    def hand_over(session: Session) -> None:
        rows: list[OutboxRow] = session.info.pop(_FLUSHED, [])
        if rows:
            futures = publisher.submit([Pending.of(row) for row in rows])
            session.info.setdefault(_WAITING, []).extend(futures)

    def forget(session: Session, previous_transaction: Any = None) -> None:
        session.info.pop(_FLUSHED, None)

    async def settle(session: AsyncSession) -> None:
        futures: list[asyncio.Future[None]] = session.sync_session.info.pop(_WAITING, [])
        if futures:
            await publisher.settle(futures)

    session_class = db.sync_session_class
    _publishers[session_class] = publisher
    event.listen(session_class, "after_flush", collect)
    event.listen(session_class, "after_commit", hand_over)
    event.listen(session_class, "after_soft_rollback", forget)
    db.add_exit_hook(settle)


async def publish_committed(db: Database, rows: Sequence[Pending]) -> None:
    """Rows a statement committed outside any session (the send path's single statement):
    publish them, and wait for them as a session's end waits for its own.

    Without a publisher (a database opened by a script) the relay publishes them.
    """
    publisher = _publishers.get(db.sync_session_class)
    if rows and publisher is not None:
        await publisher.settle(publisher.submit(rows))
