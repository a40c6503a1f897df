"""Routes under /chats and /messages: parse, call one service function, shape the answer."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response, status

from parley.auth.deps import CurrentUser, CurrentUserId
from parley.chats import presenters, service
from parley.chats.models import Chat, Message
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
from parley.common.errors import Invalid
from parley.common.ids import PathId
from parley.common.pagination import Cursor, Limit, decode_cursor, split_page
from parley.common.responses import ANY_ROUTE, SIGNED_IN, errors, links
from parley.common.schemas import Page
from parley.deps import DatabaseDep, SessionDep

router = APIRouter(tags=["chats"], responses=errors(*ANY_ROUTE, *SIGNED_IN))
# What a client can do with a chat it just created (the OpenAPI links of POST /chats).
_CHAT_OPERATIONS = (
    "get_chat",
    "update_chat",
    "add_member",
    "send_message",
    "list_messages",
    "mark_read",
)


# First of the routes: a request is matched against the routes in order, and this is the
# one that carries the load.
@router.post(
    "/chats/{chat_id}/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=MessageOut,
    responses=errors(
        404,
        ok={
            200: {"model": MessageOut, "description": "a retry with a known clientId"},
            201: {"links": links(message_id=("edit_message", "delete_message"))},
        },
    ),
)
async def send_message(
    chat_id: PathId, body: MessageIn, user_id: CurrentUserId, db: DatabaseDep
) -> Response:
    """Post a message (201); a retry with the same clientId answers 200 with the first."""
    sent = await service.send_message(
        db, chat_id=chat_id, author_id=user_id, text=body.text, client_id=body.client_id
    )
    # Already the answer's JSON (encoded once with the event): no second validation.
    return Response(
        sent.json,
        status_code=status.HTTP_201_CREATED if sent.created else status.HTTP_200_OK,
        media_type="application/json",
    )


@router.post(
    "/chats",
    status_code=status.HTTP_201_CREATED,
    responses=errors(
        404, 402, ok={200: {"model": ChatOut, "description": "the existing direct chat"}}
    ),
)
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

    kept, next_cursor = split_page(chats, limit, _by_activity)
    items = await presenters.summaries(session, kept, user.id)
    return Page[ChatSummaryOut](items=items, next_cursor=next_cursor)


@router.get("/chats/{chat_id}", responses=errors(404))
async def get_chat(chat_id: PathId, user: CurrentUser, session: SessionDep) -> ChatOut:
    """A chat with its members."""
    chat = await service.get_chat(session, chat_id, user.id)
    return await presenters.load_chat_out(session, chat)


@router.patch("/chats/{chat_id}", responses=errors(404))
async def update_chat(
    chat_id: PathId, body: ChatUpdateIn, user: CurrentUser, session: SessionDep
) -> ChatOut:
    """Change the title or description (owner only)."""
    changes = body.model_dump(include=body.model_fields_set)
    return await service.update_chat(session, chat_id=chat_id, user_id=user.id, changes=changes)


@router.post(
    "/chats/{chat_id}/members",
    status_code=status.HTTP_201_CREATED,
    responses=errors(400, 402, 404, 409),
)
async def add_member(
    chat_id: PathId, body: MemberAddIn, user: CurrentUser, session: SessionDep
) -> ChatOut:
    """Add a user to a group chat."""
    return await service.add_member(
        session, chat_id=chat_id, user_id=user.id, new_user_id=body.user_id
    )


@router.delete(
    "/chats/{chat_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(400, 404),
)
async def remove_member(
    chat_id: PathId, user_id: PathId, user: CurrentUser, session: SessionDep
) -> None:
    """Leave the chat, or (owner) remove someone."""
    await service.remove_member(session, chat_id=chat_id, user_id=user.id, target_id=user_id)


@router.get("/chats/{chat_id}/messages", responses=errors(404))
async def list_messages(
    chat_id: PathId,
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
    kept, next_cursor = split_page(messages, limit, _by_id)
    return Page[MessageOut](
        items=[presenters.message_out(m) for m in kept], next_cursor=next_cursor
    )


@router.patch("/messages/{message_id}", responses=errors(404))
async def edit_message(
    message_id: PathId, body: MessageEditIn, user: CurrentUser, session: SessionDep
) -> MessageOut:
    """Change a message's text (author only)."""
    return await service.edit_message(
        session, message_id=message_id, user_id=user.id, text=body.text
    )


@router.delete(
    "/messages/{message_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404)
)
async def delete_message(message_id: PathId, user: CurrentUser, session: SessionDep) -> None:
    """Delete a message (author or chat owner)."""
    await service.delete_message(session, message_id=message_id, user_id=user.id)


@router.post("/chats/{chat_id}/read", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404))
async def mark_read(chat_id: PathId, body: ReadIn, user: CurrentUser, session: SessionDep) -> None:
    """Move the caller's read marker."""
    await service.mark_read(session, chat_id=chat_id, user_id=user.id, message_id=body.message_id)


def _by_activity(chat: Chat) -> tuple[str, int]:
    return chat.last_activity_at.isoformat(), chat.id


def _by_id(message: Message) -> tuple[int]:
    return (message.id,)
