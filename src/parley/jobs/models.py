"""Parse jobs and the pages they store."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from parley.db.base import Base, BigIntId, IntPK, utcnow
from parley.parser import MAX_URL

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Page(Base):
    """A fetched and parsed web page; one row per requested URL, refreshed when refetched."""

    __tablename__ = "pages"

    id: Mapped[IntPK]
    url: Mapped[str] = mapped_column(String(MAX_URL), unique=True)
    final_url: Mapped[str] = mapped_column(Text)
    status_code: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(255))
    title: Mapped[str | None] = mapped_column(String(300), default=None)
    description: Mapped[str | None] = mapped_column(String(1000), default=None)
    image_url: Mapped[str | None] = mapped_column(String(MAX_URL), default=None)
    site_name: Mapped[str | None] = mapped_column(String(300), default=None)
    lang: Mapped[str | None] = mapped_column(String(35), default=None)
    text: Mapped[str] = mapped_column(Text, default="")
    links: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """A background job requested by a user. This row, not Celery, is the truth about it.

    `attempts` counts the runs that started; it also fences a run's writes, so that a run
    whose job was taken over by a redelivery cannot overwrite the newer run's results.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_in("status", JOB_STATUSES), name="status"),
        CheckConstraint("kind IN ('parse')", name="kind"),
        Index("ix_jobs_user_id_id", "user_id", "id"),
        Index("ix_jobs_status_started_at", "status", "started_at"),
    )

    id: Mapped[IntPK]
    user_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="parse")
    url: Mapped[str] = mapped_column(String(MAX_URL))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(1000), default=None)
    run_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # Renewed while an attempt runs: a running job whose heartbeat stops lost its worker.
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    page_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey("pages.id", ondelete="SET NULL"), default=None
    )
