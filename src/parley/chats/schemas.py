"""Request and response bodies of the chat and message routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator

from parley.common.ids import Id
from parley.common.schemas import CamelModel, RequestModel
from parley.common.text import is_blank

# At least one character that is not white space.
MessageText = Annotated[str, StringConstraints(min_length=1, max_length=4000, pattern=r"\S")]


def _not_blank(value: str) -> str:
    if is_blank(value):
        raise ValueError("text must not be blank")
    return value


class ChatCreateIn(RequestModel):
    """A new chat; the caller becomes its owner."""

    type: Literal["direct", "group"]
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    member_ids: list[Id] = Field(default_factory=list, max_length=1000)


class ChatUpdateIn(RequestModel):
    """New title and/or description; a field left out is unchanged."""

    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=2000)


class MemberAddIn(RequestModel):
    """Whom to add to a group chat."""

    user_id: Id


class MessageIn(RequestModel):
    """A message to post; `clientId` makes retries safe."""

    text: MessageText
    client_id: str | None = Field(default=None, min_length=1, max_length=64)

    _text_not_blank = field_validator("text")(_not_blank)


class MessageEditIn(RequestModel):
    """The new text of a message."""

    text: MessageText

    _text_not_blank = field_validator("text")(_not_blank)


class ReadIn(RequestModel):
    """The message up to which the caller has read."""

    message_id: Id


class PreviewOut(CamelModel):
    """A link preview attached to a message."""

    url: str
    status: Literal["pending", "ready", "failed"]
    title: str | None = None
    description: str | None = None
    image_url: str | None = None
    site_name: str | None = None


class MessageOut(CamelModel):
    """A message as members see it."""

    id: int
    chat_id: int
    author_id: int
    text: str
    client_id: str | None
    created_at: datetime
    edited_at: datetime | None
    previews: list[PreviewOut] = Field(default_factory=list)


class MemberOut(CamelModel):
    """One member of a chat."""

    user_id: int
    username: str
    display_name: str
    role: Literal["owner", "member"]
    joined_at: datetime
    last_read_message_id: int | None


class ChatOut(CamelModel):
    """A chat with its members."""

    id: int
    type: Literal["direct", "group"]
    title: str | None
    description: str | None
    creator_id: int
    created_at: datetime
    updated_at: datetime
    members: list[MemberOut]


class ChatSummaryOut(ChatOut):
    """A chat in the caller's list: with its newest message and the caller's unread count."""

    last_message: MessageOut | None
    unread_count: int


def as_json(model: CamelModel) -> dict[str, Any]:
    """The wire form of a schema, as events carry it."""
    return model.model_dump(mode="json", by_alias=True)
