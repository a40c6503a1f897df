"""Chats, their members with roles and read markers, messages and their link previews."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from parley.db.base import Base, BigIntId, IntPK, utcnow
from parley.parser import MAX_URL

PREVIEW_STATUSES = ("pending", "ready", "failed")


class Chat(Base):
    """A direct (two people) or group chat. `direct_key` makes a pair's direct chat unique."""

    __tablename__ = "chats"
    __table_args__ = (
        CheckConstraint("type IN ('direct', 'group')", name="type"),
        Index("ix_chats_last_activity", "last_activity_at", "id"),
    )

    id: Mapped[IntPK]
    type: Mapped[str] = mapped_column(String(8))
    title: Mapped[str | None] = mapped_column(String(200), default=None)
    description: Mapped[str | None] = mapped_column(String(2000), default=None)
    creator_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("users.id", ondelete="CASCADE"))
    direct_key: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChatMember(Base):
    """A user's membership in a chat: role and how far they have read."""

    __tablename__ = "chat_members"
    __table_args__ = (
        CheckConstraint("role IN ('owner', 'member')", name="role"),
        Index("ix_chat_members_user_id", "user_id", "chat_id"),
    )

    chat_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(8), default="member")
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_read_message_id: Mapped[int | None] = mapped_column(BigIntId, default=None)


class Message(Base):
    """A message. Deleting sets `deleted_at` and clears the text; listings skip it."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("chat_id", "author_id", "client_id"),
        Index("ix_messages_chat_id_id", "chat_id", "id"),
    )

    id: Mapped[IntPK]
    chat_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("chats.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("users.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    client_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)

    # Loaded with one `SELECT ... IN` per batch of messages, in position order.
    previews: Mapped[list[MessagePreview]] = relationship(
        lazy="selectin",
        order_by="MessagePreview.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class MessagePreview(Base):
    """The preview of one URL of a message: `pending` until its job resolves it."""

    __tablename__ = "message_previews"
    __table_args__ = (
        UniqueConstraint("message_id", "url"),
        CheckConstraint(
            "status IN (" + ", ".join(repr(s) for s in PREVIEW_STATUSES) + ")", name="status"
        ),
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
