"""Posting a message: the hottest write in Parley, in as few round trips as the database allows.

One function, `post_message`, holds the rules of a send: the author must be a member, a
known `clientId` of theirs in that chat yields (the caller answers with the first message),
the chat's activity time moves forward only, every URL gets a pending preview whose job is
enqueued, and `message.created` goes to every member — the last two through the outbox,
committed with the message.

On PostgreSQL all of it is one statement (data-modifying CTEs) run outside an explicit
transaction, on the driver directly (see `db.driver`): a send costs one round trip and
holds the chat row's lock only while that statement runs and commits. The lock is taken
before the message's id, so ids commit in order within a chat. The event's body is encoded
here, in Python, with a hole where the new message's id goes, and the statement fills the
hole. SQLite runs the same rules through the ORM in one transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    String,
    Table,
    Text,
    bindparam,
    exists,
    func,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley.chats import presenters, previews
from parley.chats.links import find_urls
from parley.chats.models import Chat, ChatMember, Message, MessagePreview
from parley.chats.previews import PREVIEW_TASK
from parley.chats.schemas import MessageOut, PreviewOut, as_json
from parley.db.base import UTCDateTime, utcnow
from parley.db.driver import DriverQuery, runs_on_driver
from parley.db.engine import Database
from parley.outbox import EVENT, JOB, OutboxRow, Pending, emit, publish_committed
from parley.realtime.codec import encode_envelope, encode_json

_messages = cast(Table, Message.__table__)
_chats = cast(Table, Chat.__table__)
_members = cast(Table, ChatMember.__table__)
_previews = cast(Table, MessagePreview.__table__)
_outbox = cast(Table, OutboxRow.__table__)

# Stands for the message id in the event body encoded before the id is known.
_ID_HOLE = "\x00message-id\x00"


@dataclass(frozen=True)
class Posted:
    """A message just posted: its id and its JSON (the API's answer, `MessageOut`)."""

    id: int
    json: str


async def post_message(
    db: Database, *, chat_id: int, author_id: int, text: str, client_id: str | None
) -> Posted | None:
    """Post and commit a message with its previews and events, and wait until the events are
    published (see outbox.hooks); None when nothing was written.

    None means either that the author is not a member or that their `client_id` is taken in
    this chat; the caller tells the two apart on that rare path.
    """
    if runs_on_driver(db.engine):
        return await _post_in_one_statement(
            db, chat_id=chat_id, author_id=author_id, text=text, client_id=client_id
        )
    async with db.session() as session:
        return await _post_with_orm(
            session, chat_id=chat_id, author_id=author_id, text=text, client_id=client_id
        )


def _message_out(
    message_id: int, chat_id: int, author_id: int, text: str, client_id: str | None, now: Any
) -> MessageOut:
    return MessageOut(
        id=message_id,
        chat_id=chat_id,
        author_id=author_id,
        text=text,
        client_id=client_id,
        created_at=now,
        edited_at=None,
        previews=[PreviewOut(url=url, status="pending") for url in find_urls(text)],
    )


async def _post_in_one_statement(
    db: Database, *, chat_id: int, author_id: int, text: str, client_id: str | None
) -> Posted | None:
    now = utcnow()
    urls = find_urls(text)
    # The message is encoded once, with a hole for its id: the answer and the event's data.
    data = as_json(_message_out(0, chat_id, author_id, text, client_id, now))
    data["id"] = _ID_HOLE
    message_head, message_tail = encode_json(data).split(json.dumps(_ID_HOLE), 1)
    envelope = encode_envelope("message.created")
    head, tail = envelope + message_head, message_tail + "}"
    params = {
        "chat_id": chat_id,
        "author_id": author_id,
        "text": text,
        "client_id": client_id,
        "now": now,
        "urls": urls,
        "head": head,
        "tail": tail,
        "preview_task": PREVIEW_TASK,
    }
    engine = db.engine
    row = await _one_statement(engine.dialect).fetchrow(engine, params)
    if row is None:
        return None
    message_id, event_id, recipients, jobs = row
    body = f"{head}{message_id}{tail}"
    rows = [Pending(event_id, EVENT, "message.created", tuple(recipients), body)]
    rows += [Pending(job_id, JOB, PREVIEW_TASK, (), job_body) for job_id, job_body in jobs or []]
    await publish_committed(db, rows)
    return Posted(message_id, f"{message_head}{message_id}{message_tail}")


async def _post_with_orm(
    session: AsyncSession, *, chat_id: int, author_id: int, text: str, client_id: str | None
) -> Posted | None:
    if await session.get(ChatMember, (chat_id, author_id)) is None:
        return None
    now = utcnow()
    message = Message(
        chat_id=chat_id, author_id=author_id, text=text, client_id=client_id, created_at=now
    )
    session.add(message)
    try:
        await previews.sync_previews(session, message)  # flushes: the clientId is checked
    except IntegrityError:
        await session.rollback()
        return None
    await session.execute(_touch(), {"chat_id": chat_id, "now": now})
    data = as_json(presenters.message_out(message))
    emit(session, await presenters.member_ids(session, chat_id), "message.created", data)
    await session.commit()
    return Posted(message.id, encode_json(data))


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


@lru_cache(maxsize=8)
def _one_statement(dialect: Dialect) -> DriverQuery:
    return DriverQuery(_one_statement_core(), dialect)


def _one_statement_core() -> Any:
    chat_id = bindparam("chat_id", type_=BigInteger)
    author_id = bindparam("author_id", type_=BigInteger)
    now = bindparam("now", type_=UTCDateTime)
    urls = (
        func.unnest(bindparam("urls", type_=ARRAY(Text)))
        .table_valued("url", with_ordinality="position")
        .render_derived(name="link")
    )

    is_member = exists().where(_members.c.chat_id == chat_id, _members.c.user_id == author_id)
    # The chat's row is locked before the message takes its id, so a chat's messages commit
    # in id order: a reader who sees message n will never later see one below n appear.
    # FOR NO KEY UPDATE, the lock the activity-time update takes anyway (rows that only
    # reference the chat, such as members, are not held up); a non-member locks nothing.
    locked_chat = (
        select(_chats.c.id).where(_chats.c.id == chat_id, is_member).with_for_update(key_share=True)
    ).cte("locked_chat")
    inserted = (
        postgresql.insert(_messages)
        .from_select(
            ["chat_id", "author_id", "text", "client_id", "created_at"],
            select(
                locked_chat.c.id,
                author_id,
                bindparam("text", type_=Text),
                bindparam("client_id", type_=String),
                now,
            ),
        )
        .on_conflict_do_nothing(index_elements=["chat_id", "author_id", "client_id"])
        .returning(_messages.c.id)
        .cte("inserted")
    )
    touched = _touch().where(exists(select(inserted.c.id))).returning(_chats.c.id).cte("touched")
    new_previews = (
        postgresql.insert(_previews)
        .from_select(
            ["message_id", "position", "url", "status", "created_at", "updated_at"],
            select(
                inserted.c.id,
                urls.c.position - 1,
                urls.c.url,
                literal("pending"),
                now,
                now,
            ).select_from(inserted.join(urls, true())),
        )
        .returning(_previews.c.id)
        .cte("new_previews")
    )
    recipients = (
        select(func.json_agg(_members.c.user_id, type_=JSON).label("ids"))
        .where(_members.c.chat_id == chat_id)
        .cte("recipients")
    )
    body = (
        bindparam("head", type_=Text)
        + func.cast(inserted.c.id, Text)
        + bindparam("tail", type_=Text)
    )
    event = (
        postgresql.insert(_outbox)
        .from_select(
            ["kind", "topic", "recipients", "body", "created_at"],
            select(
                literal(EVENT), literal("message.created"), recipients.c.ids, body, now
            ).select_from(inserted.join(recipients, true())),
        )
        .returning(_outbox.c.id, _outbox.c.recipients)
        .cte("event")
    )
    job_body = (
        literal("[")
        + func.cast(inserted.c.id, Text)
        + literal(",")
        + func.cast(func.to_json(urls.c.url), Text)
        + literal("]")
    )
    jobs = (
        postgresql.insert(_outbox)
        .from_select(
            ["kind", "topic", "body", "created_at"],
            select(
                literal(JOB), bindparam("preview_task", type_=String), job_body, now
            ).select_from(inserted.join(urls, true())),
        )
        .returning(_outbox.c.id, _outbox.c.body)
        .cte("jobs")
    )
    job_list = select(
        func.json_agg(func.json_build_array(jobs.c.id, jobs.c.body), type_=JSON)
    ).scalar_subquery()
    return (
        select(inserted.c.id, event.c.id, event.c.recipients, job_list)
        .select_from(inserted.join(event, true()))
        .add_cte(touched, new_previews, recipients, event, jobs)
    )
