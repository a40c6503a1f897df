"""The rules of chats, members and messages. Each function commits, then publishes events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley.auth.models import User
from parley.chats import posting, views
from parley.chats.models import Chat, ChatMember, Message
from parley.chats.schemas import ChatOut, MessageOut, as_json
from parley.common.errors import BadRequest, Conflict, Forbidden, Invalid, NotFound
from parley.db.base import utcnow
from parley.jobs import previews
from parley.jobs.urls import find_urls
from parley.realtime.publisher import EventPublisher

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


async def create_chat(
    session: AsyncSession,
    bus: EventPublisher,
    *,
    creator_id: int,
    chat_type: str,
    title: str | None,
    description: str | None,
    member_ids: list[int],
) -> tuple[ChatOut, bool]:
    """Create a chat with the caller as owner. A pair's direct chat is returned if it exists.

    Returns the chat and whether it was created now.
    """
    others = set(member_ids) - {creator_id}
    missing = others - await _existing_users(session, others)
    if missing:
        raise NotFound(f"user not found: {sorted(missing)[0]}")
    direct_key = None
    if chat_type == "direct":
        if len(others) != 1 or len(set(member_ids)) != 1:
            raise Invalid("a direct chat has exactly one other member")
        (other,) = others
        direct_key = f"{min(creator_id, other)}:{max(creator_id, other)}"
        existing = await session.scalar(select(Chat).where(Chat.direct_key == direct_key))
        if existing is not None:
            return await views.load_chat_out(session, existing), False

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
        await session.commit()
    except IntegrityError:
        # Another request created the same direct chat first: answer with theirs.
        await session.rollback()
        existing = await session.scalar(select(Chat).where(Chat.direct_key == direct_key))
        if existing is None:
            raise
        return await views.load_chat_out(session, existing), False
    out = await views.load_chat_out(session, chat)
    await bus.publish([m.user_id for m in out.members], "chat.created", as_json(out))
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
    session: AsyncSession,
    bus: EventPublisher,
    *,
    chat_id: int,
    user_id: int,
    changes: dict[str, str | None],
) -> ChatOut:
    """Change title/description; owner only."""
    member = await membership(session, chat_id, user_id)
    if member.role != "owner":
        raise Forbidden("only the owner may edit the chat")
    chat = await get_chat(session, chat_id, user_id)
    for field, value in changes.items():
        setattr(chat, field, value)
    chat.updated_at = utcnow()
    await session.commit()
    out = await views.load_chat_out(session, chat)
    await bus.publish([m.user_id for m in out.members], "chat.updated", as_json(out))
    return out


async def add_member(
    session: AsyncSession, bus: EventPublisher, *, chat_id: int, user_id: int, new_user_id: int
) -> ChatOut:
    """Add someone to a group chat; any member may. The newcomer gets `chat.created`."""
    chat = await get_chat(session, chat_id, user_id)
    if chat.type != "group":
        raise BadRequest("members cannot be added to a direct chat")
    if await session.get(User, new_user_id) is None:
        raise NotFound("user not found")
    session.add(ChatMember(chat_id=chat_id, user_id=new_user_id, role="member"))
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict("already a member") from exc
    out = await views.load_chat_out(session, chat)
    added = next(m for m in out.members if m.user_id == new_user_id)
    others = [m.user_id for m in out.members if m.user_id != new_user_id]
    payload = {"chatId": chat_id, "userId": new_user_id, "member": as_json(added)}
    await bus.publish(others, "member.added", payload)
    await bus.publish([new_user_id], "chat.created", as_json(out))
    return out


async def remove_member(
    session: AsyncSession, bus: EventPublisher, *, chat_id: int, user_id: int, target_id: int
) -> None:
    """Leave (target is the caller) or, as the owner, remove someone else.

    When the owner leaves a group, the longest-standing member becomes owner.
    """
    me = await membership(session, chat_id, user_id)
    chat = await get_chat(session, chat_id, user_id)
    if chat.type == "direct":
        raise BadRequest("members of a direct chat cannot change")
    if target_id != user_id and me.role != "owner":
        raise Forbidden("only the owner may remove other members")
    target = await session.get(ChatMember, (chat_id, target_id))
    if target is None:
        raise NotFound("member not found")
    before = await views.member_ids(session, chat_id)
    await session.delete(target)
    new_owner = None
    if target.role == "owner":
        new_owner = await session.scalar(
            select(ChatMember)
            .where(ChatMember.chat_id == chat_id, ChatMember.user_id != target_id)
            .order_by(ChatMember.joined_at, ChatMember.user_id)
            .limit(1)
        )
        if new_owner is not None:
            new_owner.role = "owner"
            chat.updated_at = utcnow()
    await session.commit()
    await bus.publish(before, "member.removed", {"chatId": chat_id, "userId": target_id})
    if new_owner is not None:
        out = await views.load_chat_out(session, chat)
        await bus.publish([m.user_id for m in out.members], "chat.updated", as_json(out))


async def send_message(
    session: AsyncSession,
    bus: EventPublisher,
    *,
    chat_id: int,
    author_id: int,
    text: str,
    client_id: str | None,
) -> tuple[MessageOut, bool]:
    """Post a message. A repeated `client_id` returns the first message instead of a new one.

    Returns the message and whether it was created now. A message with links takes the ORM
    path, which also creates its previews; any other takes `posting`'s three statements.
    """
    if find_urls(text):
        message, created = await _send_with_previews(
            session, bus, chat_id=chat_id, author_id=author_id, text=text, client_id=client_id
        )
        return views.message_out(message), created
    now = utcnow()
    posted = await posting.post_if_member(
        session, chat_id=chat_id, author_id=author_id, text=text, client_id=client_id, now=now
    )
    if posted is None:
        await membership(session, chat_id, author_id)
        existing = await _by_client_id(session, chat_id, author_id, client_id)
        if existing is None:  # pragma: no cover - a member's insert only yields to a clientId
            raise NotFound(CHAT_NOT_FOUND)
        return views.message_out(existing), False
    out = MessageOut(
        id=posted.message_id,
        chat_id=chat_id,
        author_id=author_id,
        text=text,
        client_id=client_id,
        created_at=now,
        edited_at=None,
    )
    await bus.publish(posted.recipients, "message.created", as_json(out))
    return out, True


async def _send_with_previews(
    session: AsyncSession,
    bus: EventPublisher,
    *,
    chat_id: int,
    author_id: int,
    text: str,
    client_id: str | None,
) -> tuple[Message, bool]:
    chat = await get_chat(session, chat_id, author_id)
    existing = await _by_client_id(session, chat_id, author_id, client_id)
    if existing is not None:
        return existing, False
    now = utcnow()
    message = Message(
        chat_id=chat_id, author_id=author_id, text=text, client_id=client_id, created_at=now
    )
    session.add(message)
    await previews.sync_previews(session, message)
    chat.last_activity_at = max(chat.last_activity_at, now)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        existing = await _by_client_id(session, chat_id, author_id, client_id)
        if existing is None:
            raise
        return existing, False
    payload = as_json(views.message_out(message))
    await bus.publish(await views.member_ids(session, chat_id), "message.created", payload)
    await previews.dispatch_previews(session, bus)
    return message, True


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


async def edit_message(
    session: AsyncSession, bus: EventPublisher, *, message_id: int, user_id: int, text: str
) -> Message:
    """Change a message's text; author only. Sets `edited_at`."""
    message = await _visible_message(session, message_id, user_id)
    if message.author_id != user_id:
        raise Forbidden("only the author may edit a message")
    if message.text != text:
        message.text = text
        message.edited_at = utcnow()
        await previews.sync_previews(session, message)
        await session.commit()
        payload = as_json(views.message_out(message))
        await bus.publish(
            await views.member_ids(session, message.chat_id), "message.updated", payload
        )
        await previews.dispatch_previews(session, bus)
    return message


async def delete_message(
    session: AsyncSession, bus: EventPublisher, *, message_id: int, user_id: int
) -> None:
    """Delete a message (author or chat owner). Its text is erased; listings skip it."""
    message = await _visible_message(session, message_id, user_id)
    if message.author_id != user_id:
        member = await membership(session, message.chat_id, user_id)
        if member.role != "owner":
            raise Forbidden("only the author or the chat owner may delete a message")
    message.deleted_at = utcnow()
    message.text = ""
    await previews.sync_previews(session, message)
    await session.commit()
    await bus.publish(
        await views.member_ids(session, message.chat_id),
        "message.deleted",
        {"id": message.id, "chatId": message.chat_id},
    )


async def mark_read(
    session: AsyncSession, bus: EventPublisher, *, chat_id: int, user_id: int, message_id: int
) -> None:
    """Move the caller's read marker forward to `message_id` (never backwards)."""
    member = await membership(session, chat_id, user_id)
    message = await session.get(Message, message_id)
    if message is None or message.chat_id != chat_id:
        raise NotFound(MESSAGE_NOT_FOUND)
    if member.last_read_message_id is not None and member.last_read_message_id >= message_id:
        return
    member.last_read_message_id = message_id
    await session.commit()
    await bus.publish(
        await views.member_ids(session, chat_id),
        "read",
        {"chatId": chat_id, "userId": user_id, "messageId": message_id},
    )
