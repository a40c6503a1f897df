"""Jobs, stored pages and link previews.

`MessagePreview` adds a `previews` collection to `chats.models.Message` (a backref, loaded
with one `SELECT ... IN` per batch of messages), so every message read from the database
carries its previews in position order.
"""

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
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, backref, mapped_column, relationship

from parley.chats.models import Message
from parley.db.base import Base, BigIntId, IntPK, utcnow

MAX_URL = 2048

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
PREVIEW_STATUSES = ("pending", "ready", "failed")


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


class MessagePreview(Base):
    """The preview of one URL of a message: `pending` until its job resolves it."""

    __tablename__ = "message_previews"
    __table_args__ = (
        UniqueConstraint("message_id", "url"),
        CheckConstraint(_in("status", PREVIEW_STATUSES), name="status"),
        Index("ix_message_previews_status_updated_at", "status", "updated_at"),
    )

    id: Mapped[IntPK]
    message_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("messages.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(String(MAX_URL))
    status: Mapped[str] = mapped_column(String(8), default="pending")
    title: Mapped[str | None] = mapped_column(String(300), default=None)
    description: Mapped[str | None] = mapped_column(String(1000), default=None)
    image_url: Mapped[str | None] = mapped_column(String(MAX_URL), default=None)
    site_name: Mapped[str | None] = mapped_column(String(300), default=None)
    page_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey("pages.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    message: Mapped[Message] = relationship(
        lazy="raise",
        backref=backref(
            "previews",
            lazy="selectin",
            order_by="MessagePreview.position",
            cascade="all, delete-orphan",
            passive_deletes=True,
        ),
    )


def previews_of(message: Message) -> list[MessagePreview]:
    """A message's preview collection (the backref that this module adds to Message)."""
    previews: list[MessagePreview] = message.previews  # type: ignore[attr-defined]
    return previews


def set_previews(message: Message, previews: list[MessagePreview]) -> None:
    """Replace a message's previews; rows left out are deleted at the next flush."""
    message.previews = previews  # type: ignore[attr-defined]
