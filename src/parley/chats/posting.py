"""The statements of the send path, kept to as few round trips as the database allows.

A send is the hottest write in Parley, so it skips the ORM: an INSERT that checks membership
and the clientId in the same statement, a conditional UPDATE of the chat's activity time,
and a SELECT of the recipients. On PostgreSQL the three are one statement (data-modifying
CTEs) run outside an explicit transaction, so a send costs one round trip and holds the
chat row's lock only while that statement commits. SQLite runs them one after another in
the session's transaction. The statements are built once, with bound parameters, so
SQLAlchemy compiles and caches them once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import BigInteger, String, Table, Text, bindparam, exists, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from parley.chats.models import Chat, ChatMember, Message
from parley.db.base import UTCDateTime

_messages = cast(Table, Message.__table__)
_chats = cast(Table, Chat.__table__)
_members = cast(Table, ChatMember.__table__)


@dataclass(frozen=True)
class Posted:
    """What a successful insert hands back: the new id and the chat's members."""

    message_id: int
    recipients: list[int]


async def post_if_member(
    session: AsyncSession,
    *,
    chat_id: int,
    author_id: int,
    text: str,
    client_id: str | None,
    now: datetime,
) -> Posted | None:
    """Insert the message if the author is a member and the clientId is new, and commit.

    Also moves the chat's activity time forward and reads its members. None means either
    that the author is not a member or that their clientId is taken (nothing was written);
    the caller tells the two apart on that rare path.
    """
    params = {
        "chat_id": chat_id,
        "author_id": author_id,
        "text": text,
        "client_id": client_id,
        "now": now,
    }
    engine = session.bind
    assert isinstance(engine, AsyncEngine)  # sessions come from Database.sessionmaker
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            rows = (await conn.execute(_one_statement(), params)).all()
        if not rows:
            return None
        return Posted(rows[0][0], [row[1] for row in rows])
    message_id: int | None = (await session.execute(_insert(engine.dialect.name), params)).scalar()
    if message_id is None:
        await session.rollback()
        return None
    await session.execute(_touch(), params)
    members = await session.scalars(_recipients(), params)
    recipients = list(members)
    await session.commit()
    return Posted(message_id, recipients)


@cache
def _insert(dialect: str) -> Any:
    chat_id = bindparam("chat_id", type_=BigInteger)
    author_id = bindparam("author_id", type_=BigInteger)
    is_member = exists().where(_members.c.chat_id == chat_id, _members.c.user_id == author_id)
    row = select(
        chat_id,
        author_id,
        bindparam("text", type_=Text),
        bindparam("client_id", type_=String),
        bindparam("now", type_=UTCDateTime),
    ).where(is_member)
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(_messages)
        .from_select(["chat_id", "author_id", "text", "client_id", "created_at"], row)
        .on_conflict_do_nothing(index_elements=["chat_id", "author_id", "client_id"])
        .returning(_messages.c.id)
    )


@cache
def _touch() -> Any:
    """Move the chat's activity time forward to `now`, never back."""
    now = bindparam("now", type_=UTCDateTime)
    return (
        update(_chats)
        .where(_chats.c.id == bindparam("chat_id", type_=BigInteger))
        .where(_chats.c.last_activity_at < now)
        .values(last_activity_at=now)
    )


@cache
def _recipients() -> Any:
    return select(_members.c.user_id).where(
        _members.c.chat_id == bindparam("chat_id", type_=BigInteger)
    )


@cache
def _one_statement() -> Any:
    inserted = _insert("postgresql").cte("inserted")
    touched = _touch().where(exists(select(inserted.c.id))).returning(_chats.c.id).cte("touched")
    members = _recipients().subquery()
    return select(inserted.c.id, members.c.user_id).join(members, true()).add_cte(touched)
