"""Routes under /chats and /messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from parley.auth.deps import CurrentUser, CurrentUserId
from parley.chats import service, views
from parley.chats.schemas import (
    ChatCreateIn,
    ChatOut,
    ChatSummaryOut,
    ChatUpdateIn,
    MemberAddIn,
    MessageEditIn,
    MessageIn,
    MessageOut,
    ReadIn,
)
from parley.common.cursor import decode_cursor, encode_cursor
from parley.common.errors import Invalid
from parley.common.schemas import Page
from parley.deps import SessionDep

router = APIRouter(tags=["chats"])

ChatId = Annotated[int, Path(ge=1, le=2**63 - 1)]
MessageId = Annotated[int, Path(ge=1, le=2**63 - 1)]
UserId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=256)]


@router.post("/chats", status_code=status.HTTP_201_CREATED, responses={200: {"model": ChatOut}})
async def create_chat(
    body: ChatCreateIn, user: CurrentUser, session: SessionDep, response: Response
) -> ChatOut:
    """Create a chat (201), or return the existing direct chat with that person (200)."""
    chat, created = await service.create_chat(
        session,
        creator_id=user.id,
        chat_type=body.type,
        title=body.title,
        description=body.description,
        member_ids=body.member_ids,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return chat


@router.get("/chats")
async def list_chats(
    user: CurrentUser, session: SessionDep, limit: Limit = 50, cursor: Cursor = None
) -> Page[ChatSummaryOut]:
    """The caller's chats, latest activity first, with last message and unread count."""
    after = None
    if cursor:
        at, chat_id = decode_cursor(cursor, str, int)
        try:
            moment = datetime.fromisoformat(at)
            # In UTC now: the database would do it later, and fail on year 1 at +14:00.
            after = (moment.astimezone(UTC) if moment.tzinfo else moment, chat_id)
        except (ValueError, OverflowError) as exc:
            raise Invalid("invalid cursor") from exc
    chats = await service.list_chats(session, user.id, after=after, limit=limit + 1)
    next_cursor = None
    if len(chats) > limit:
        last = chats[limit - 1]
        next_cursor = encode_cursor(last.last_activity_at.isoformat(), last.id)
    items = await views.summaries(session, chats[:limit], user.id)
    return Page[ChatSummaryOut](items=items, next_cursor=next_cursor)


@router.get("/chats/{chat_id}")
async def get_chat(chat_id: ChatId, user: CurrentUser, session: SessionDep) -> ChatOut:
    """A chat with its members."""
    chat = await service.get_chat(session, chat_id, user.id)
    return await views.load_chat_out(session, chat)


@router.patch("/chats/{chat_id}")
async def update_chat(
    chat_id: ChatId, body: ChatUpdateIn, user: CurrentUser, session: SessionDep
) -> ChatOut:
    """Change the title or description (owner only)."""
    changes = body.model_dump(include=body.model_fields_set)
    return await service.update_chat(session, chat_id=chat_id, user_id=user.id, changes=changes)


@router.post("/chats/{chat_id}/members", status_code=status.HTTP_201_CREATED)
async def add_member(
    chat_id: ChatId, body: MemberAddIn, user: CurrentUser, session: SessionDep
) -> ChatOut:
    """Add a user to a group chat."""
    return await service.add_member(
        session, chat_id=chat_id, user_id=user.id, new_user_id=body.user_id
    )


@router.delete("/chats/{chat_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_member(
    chat_id: ChatId, user_id: UserId, user: CurrentUser, session: SessionDep
) -> None:
    """Leave the chat, or (owner) remove someone."""
    await service.remove_member(session, chat_id=chat_id, user_id=user.id, target_id=user_id)


@router.post(
    "/chats/{chat_id}/messages",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": MessageOut, "description": "a retry with a known clientId"}},
)
async def send_message(
    chat_id: ChatId,
    body: MessageIn,
    user_id: CurrentUserId,
    session: SessionDep,
    response: Response,
) -> MessageOut:
    """Post a message (201); a retry with the same clientId answers 200 with the first."""
    message, created = await service.send_message(
        session, chat_id=chat_id, author_id=user_id, text=body.text, client_id=body.client_id
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return message


@router.get("/chats/{chat_id}/messages")
async def list_messages(
    chat_id: ChatId,
    user: CurrentUser,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[MessageOut]:
    """A chat's messages, newest first."""
    before = decode_cursor(cursor, int)[0] if cursor else None
    messages = await service.list_messages(
        session, chat_id=chat_id, user_id=user.id, before_id=before, limit=limit + 1
    )
    next_cursor = encode_cursor(messages[limit - 1].id) if len(messages) > limit else None
    return Page[MessageOut](
        items=[views.message_out(m) for m in messages[:limit]], next_cursor=next_cursor
    )


@router.patch("/messages/{message_id}")
async def edit_message(
    message_id: MessageId, body: MessageEditIn, user: CurrentUser, session: SessionDep
) -> MessageOut:
    """Change a message's text (author only)."""
    return await service.edit_message(
        session, message_id=message_id, user_id=user.id, text=body.text
    )


@router.delete("/messages/{message_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_message(message_id: MessageId, user: CurrentUser, session: SessionDep) -> None:
    """Delete a message (author or chat owner)."""
    await service.delete_message(session, message_id=message_id, user_id=user.id)


@router.post("/chats/{chat_id}/read", status_code=status.HTTP_204_NO_CONTENT)
async def mark_read(chat_id: ChatId, body: ReadIn, user: CurrentUser, session: SessionDep) -> None:
    """Move the caller's read marker."""
    await service.mark_read(session, chat_id=chat_id, user_id=user.id, message_id=body.message_id)
