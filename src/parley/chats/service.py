"""The rules of chats, members and messages.

Each function that changes something emits its events in the same transaction (the
outbox) and builds its answer before committing: once the commit succeeded, nothing is left
that could fail and turn a committed change into an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley.auth.models import User
from parley.billing import Limit, check_limit
from parley.chats import posting, presenters, previews
from parley.chats.models import Chat, ChatMember, Message
from parley.chats.schemas import ChatOut, MessageOut, as_json
from parley.common.errors import BadRequest, Conflict, Forbidden, Invalid, NotFound
from parley.db.base import utcnow
from parley.db.engine import Database
from parley.outbox import emit
from parley.realtime.codec import encode_json

CHAT_NOT_FOUND = "chat not found"
MESSAGE_NOT_FOUND = "message not found"


async def membership(session: AsyncSession, chat_id: int, user_id: int) -> ChatMember:
    """The caller's membership; NotFound when the chat is missing or not theirs to see."""
    member = await session.get(ChatMember, (chat_id, user_id))
    if member is None:
        raise NotFound(CHAT_NOT_FOUND)
    return member


async def get_chat(session: AsyncSession, chat_id: int, user_id: int) -> Chat:
    """A chat the caller is a member of."""
    await membership(session, chat_id, user_id)
    chat = await session.get(Chat, chat_id)
    if chat is None:  # pragma: no cover - membership rows cascade with their chat
        raise NotFound(CHAT_NOT_FOUND)
    return chat


async def _existing_users(session: AsyncSession, ids: set[int]) -> set[int]:
    if not ids:
        return set()
    return set(await session.scalars(select(User.id).where(User.id.in_(ids))))


def _direct_key(a: int, b: int) -> str:
    return f"{min(a, b)}:{max(a, b)}"


async def create_chat(
    session: AsyncSession,
    *,
    creator_id: int,
    chat_type: str,
    title: str | None,
    description: str | None,
    member_ids: list[int],
) -> tuple[ChatOut, bool]:
    """Create a chat with the caller as owner. A pair's direct chat is returned if it exists.

    Returns the chat and whether it was created now. Two concurrent requests for the same
    direct chat create one: the loser of the unique key answers with the winner's.
    """
    others = set(member_ids) - {creator_id}
    missing = others - await _existing_users(session, others)
    if missing:
        raise Invalid(f"no user has the id {sorted(missing)[0]}")
    direct_key = None
    if chat_type == "direct":
        if len(others) != 1 or len(set(member_ids)) != 1:
            raise Invalid("a direct chat has exactly one other member")
        direct_key = _direct_key(creator_id, next(iter(others)))
        existing = await session.scalar(select(Chat).where(Chat.direct_key == direct_key))
        if existing is not None:
            return await presenters.load_chat_out(session, existing), False
    await check_limit(session, creator_id, Limit.GROUP_MEMBERS, len(others) + 1)

    now = utcnow()
    chat = Chat(
        type=chat_type,
        title=title,
        description=description,
        creator_id=creator_id,
        direct_key=direct_key,
        created_at=now,
        updated_at=now,
        last_activity_at=now,
    )
    session.add(chat)
    try:
        await session.flush()
        session.add(ChatMember(chat_id=chat.id, user_id=creator_id, role="owner", joined_at=now))
        for uid in sorted(others):
            session.add(ChatMember(chat_id=chat.id, user_id=uid, role="member", joined_at=now))
        await session.flush()
        out = await presenters.load_chat_out(session, chat)
        emit(session, [m.user_id for m in out.members], "chat.created", as_json(out))
        await session.commit()
    except IntegrityError:
        # Another request created the same direct chat first: answer with theirs.
        await session.rollback()
        existing = await session.scalar(select(Chat).where(Chat.direct_key == direct_key))
        if existing is None:
            raise
        return await presenters.load_chat_out(session, existing), False
    return out, True


async def list_chats(
    session: AsyncSession, user_id: int, *, after: tuple[datetime, int] | None, limit: int
) -> list[Chat]:
    """The caller's chats, latest activity first, after a (last_activity_at, id) cursor."""
    stmt = (
        select(Chat)
        .join(ChatMember, and_(ChatMember.chat_id == Chat.id, ChatMember.user_id == user_id))
        .order_by(Chat.last_activity_at.desc(), Chat.id.desc())
        .limit(limit)
    )
    if after is not None:
        at, chat_id = after
        stmt = stmt.where(
            or_(
                Chat.last_activity_at < at,
                and_(Chat.last_activity_at == at, Chat.id < chat_id),
            )
        )
    return list(await session.scalars(stmt))


async def update_chat(
    session: AsyncSession, *, chat_id: int, user_id: int, changes: dict[str, str | None]
) -> ChatOut:
    """Change title/description; owner only."""
    member = await membership(session, chat_id, user_id)
    if member.role != "owner":
        raise Forbidden("only the owner may edit the chat")
    chat = await get_chat(session, chat_id, user_id)
    for field, value in changes.items():
        setattr(chat, field, value)
    chat.updated_at = utcnow()
    await session.flush()
    out = await presenters.load_chat_out(session, chat)
    emit(session, [m.user_id for m in out.members], "chat.updated", as_json(out))
    await session.commit()
    return out


async def add_member(
    session: AsyncSession, *, chat_id: int, user_id: int, new_user_id: int
) -> ChatOut:
    """Add someone to a group chat; any member may, up to the limit of the owner's plan
    (402). The newcomer gets `chat.created`, then, like every member, `member.added`.

    The membership's primary key settles concurrent adds of the same person: one wins, the
    other answers 409.
    """
    chat = await get_chat(session, chat_id, user_id)
    if chat.type != "group":
        raise BadRequest("members cannot be added to a direct chat")
    if await session.get(User, new_user_id) is None:
        raise Invalid(f"no user has the id {new_user_id}")
    session.add(ChatMember(chat_id=chat_id, user_id=new_user_id, role="member"))
    try:
        await session.flush()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict("already a member") from exc
    out = await presenters.load_chat_out(session, chat)
    # The owner's plan sets the group's size; over it, nothing is committed (402).
    owner = next((m.user_id for m in out.members if m.role == "owner"), user_id)
    await check_limit(
        session,
        owner,
        Limit.GROUP_MEMBERS,
        lambda: _member_count(session, chat_id),
        serialize=(Chat.id, chat_id),
    )
    added = next(m for m in out.members if m.user_id == new_user_id)
    payload = {"chatId": chat_id, "userId": new_user_id, "member": as_json(added)}
    # The newcomer learns of the chat first, then, as a member now, of the addition itself.
    emit(session, [new_user_id], "chat.created", as_json(out))
    emit(session, [m.user_id for m in out.members], "member.added", payload)
    await session.commit()
    return out


async def _member_count(session: AsyncSession, chat_id: int) -> int:
    """Members of a chat, as this transaction sees them now."""
    count = await session.scalar(
        select(func.count()).select_from(ChatMember).where(ChatMember.chat_id == chat_id)
    )
    return int(count or 0)


async def remove_member(
    session: AsyncSession, *, chat_id: int, user_id: int, target_id: int
) -> None:
    """Leave (target is the caller) or, as the owner, remove someone else.

    When the owner leaves a group, the longest-standing member becomes owner. The rows are
    deleted and checked in one transaction with the chat row locked, so two concurrent
    removals cannot both hand the ownership on, nor both report the same departure.
    """
    await session.execute(select(Chat.id).where(Chat.id == chat_id).with_for_update())
    me = await membership(session, chat_id, user_id)
    chat = await get_chat(session, chat_id, user_id)
    if chat.type == "direct":
        raise BadRequest("members of a direct chat cannot change")
    if target_id != user_id and me.role != "owner":
        raise Forbidden("only the owner may remove other members")
    before = await presenters.member_ids(session, chat_id)
    removed = await session.scalar(
        delete(ChatMember)
        .where(ChatMember.chat_id == chat_id, ChatMember.user_id == target_id)
        .returning(ChatMember.role)
    )
    if removed is None:
        raise NotFound("member not found")
    emit(session, before, "member.removed", {"chatId": chat_id, "userId": target_id})
    if removed == "owner":
        new_owner = await session.scalar(
            select(ChatMember)
            .where(ChatMember.chat_id == chat_id)
            .order_by(ChatMember.joined_at, ChatMember.user_id)
            .limit(1)
        )
        if new_owner is not None:
            new_owner.role = "owner"
            chat.updated_at = utcnow()
            await session.flush()
            out = await presenters.load_chat_out(session, chat)
            emit(session, [m.user_id for m in out.members], "chat.updated", as_json(out))
    await session.commit()


@dataclass(frozen=True)
class Sent:
    """The answer to a send: the message's id and JSON, and whether it was created now."""

    id: int
    json: str
    created: bool


async def send_message(
    db: Database, *, chat_id: int, author_id: int, text: str, client_id: str | None
) -> Sent:
    """Post a message. A repeated `client_id` returns the first message instead of a new one.

    The hottest write: it takes the database rather than a session, and opens one only on the
    rare path (see `posting` for the common one).
    """
    posted = await posting.post_message(
        db, chat_id=chat_id, author_id=author_id, text=text, client_id=client_id
    )
    if posted is not None:
        return Sent(posted.id, posted.json, created=True)
    async with db.session() as session:
        await membership(session, chat_id, author_id)
        existing = await _by_client_id(session, chat_id, author_id, client_id)
        if existing is None:  # pragma: no cover - a member's insert only yields to a clientId
            raise NotFound(CHAT_NOT_FOUND)
        out = presenters.message_out(existing)
        return Sent(out.id, encode_json(as_json(out)), created=False)


async def _by_client_id(
    session: AsyncSession, chat_id: int, author_id: int, client_id: str | None
) -> Message | None:
    if client_id is None:
        return None
    return await session.scalar(
        select(Message).where(
            Message.chat_id == chat_id,
            Message.author_id == author_id,
            Message.client_id == client_id,
        )
    )


async def list_messages(
    session: AsyncSession, *, chat_id: int, user_id: int, before_id: int | None, limit: int
) -> list[Message]:
    """A page of a chat's messages, newest first, older than `before_id`."""
    await membership(session, chat_id, user_id)
    stmt = (
        select(Message)
        .where(Message.chat_id == chat_id, Message.deleted_at.is_(None))
        .order_by(Message.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        stmt = stmt.where(Message.id < before_id)
    return list(await session.scalars(stmt))


async def _visible_message(session: AsyncSession, message_id: int, user_id: int) -> Message:
    message = await session.get(Message, message_id)
    if message is None or message.deleted_at is not None:
        raise NotFound(MESSAGE_NOT_FOUND)
    if await session.get(ChatMember, (message.chat_id, user_id)) is None:
        raise NotFound(MESSAGE_NOT_FOUND)
    return message


async def _write_unless_deleted(session: AsyncSession, message: Message, **values: object) -> None:
    """Write `values` to a message read as visible, unless it has been deleted since.

    The check and the write are one conditional UPDATE: an edit racing a delete must not
    put text back into a deleted message, nor two deletes both report one. The UPDATE
    takes the row's lock (PostgreSQL) or the database's write lock (SQLite) until commit,
    so whoever comes second sees the first one's outcome: NotFound once it is deleted.
    """
    written = await session.scalar(
        update(Message)
        .where(Message.id == message.id, Message.deleted_at.is_(None))
        .values(**values)
        .returning(Message.id)
    )
    if written is None:
        await session.rollback()
        raise NotFound(MESSAGE_NOT_FOUND)


async def edit_message(
    session: AsyncSession, *, message_id: int, user_id: int, text: str
) -> MessageOut:
    """Change a message's text; author only. Sets `edited_at`."""
    message = await _visible_message(session, message_id, user_id)
    if message.author_id != user_id:
        raise Forbidden("only the author may edit a message")
    if message.text != text:
        await _write_unless_deleted(session, message, text=text, edited_at=utcnow())
        await previews.sync_previews(session, message)
        await session.flush()
        out = presenters.message_out(message)
        members = await presenters.member_ids(session, message.chat_id)
        emit(session, members, "message.updated", as_json(out))
        await session.commit()
        return out
    return presenters.message_out(message)


async def delete_message(session: AsyncSession, *, message_id: int, user_id: int) -> None:
    """Delete a message (author or chat owner). Its text is erased; listings skip it."""
    message = await _visible_message(session, message_id, user_id)
    if message.author_id != user_id:
        member = await membership(session, message.chat_id, user_id)
        if member.role != "owner":
            raise Forbidden("only the author or the chat owner may delete a message")
    await _write_unless_deleted(session, message, deleted_at=utcnow(), text="")
    await previews.sync_previews(session, message)
    members = await presenters.member_ids(session, message.chat_id)
    emit(session, members, "message.deleted", {"id": message.id, "chatId": message.chat_id})
    await session.commit()


async def mark_read(session: AsyncSession, *, chat_id: int, user_id: int, message_id: int) -> None:
    """Move the caller's read marker forward to `message_id` (never backwards).

    One conditional UPDATE moves it, so concurrent calls can only move it further: the
    marker ends at the highest id any of them acknowledged.
    """
    await membership(session, chat_id, user_id)
    message = await session.get(Message, message_id)
    if message is None or message.chat_id != chat_id:
        # The chat exists; the body names no message of it: invalid input, not a missing
        # resource (a client must not take it for the chat being gone).
        raise Invalid("messageId is not a message of this chat")
    moved = await session.scalar(
        update(ChatMember)
        .where(
            ChatMember.chat_id == chat_id,
            ChatMember.user_id == user_id,
            or_(
                ChatMember.last_read_message_id.is_(None),
                ChatMember.last_read_message_id < message_id,
            ),
        )
        .values(last_read_message_id=message_id)
        .returning(ChatMember.user_id)
        .execution_options(synchronize_session=False)
    )
    if moved is None:
        await session.rollback()
        return
    members = await presenters.member_ids(session, chat_id)
    emit(session, members, "read", {"chatId": chat_id, "userId": user_id, "messageId": message_id})
    await session.commit()
