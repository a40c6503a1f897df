"""The outbox table: one row per event or job enqueue, committed with the change it reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from parley.db.base import Base, IntPK, utcnow

EVENT = "event"
JOB = "job"


class OutboxRow(Base):
    """An event to publish or a job to enqueue, waiting for its publication.

    For an event, `topic` is its type, `recipients` the users it concerns and `body` the
    encoded envelope without its id (the log assigns one per user). For a job, `topic` is
    the task name, `body` its JSON arguments and `run_at` when it is due. `published_at` is
    set once it is out; published rows are pruned after a short while.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_unpublished",
            "id",
            postgresql_where="published_at IS NULL",
            sqlite_where="published_at IS NULL",
        ),
        # Row ids are publication keys (appending one twice is a no-op): SQLite must never
        # hand out an id again once the rows below it are pruned.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[IntPK]
    kind: Mapped[str] = mapped_column(String(8))
    topic: Mapped[str] = mapped_column(String(64))
    recipients: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    body: Mapped[str] = mapped_column(Text)
    run_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(default=None)
