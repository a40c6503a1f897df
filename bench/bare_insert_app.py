"""The baseline for `bench/send.py`: a bare FastAPI app that INSERTs one message row.

No auth, no ORM, no events: FastAPI parses the body, one pooled asyncpg connection runs one
`INSERT ... RETURNING`, and the row goes back as JSON. What Parley does on top of this is
what `send.py` measures.

    BARE_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/<db> \\
        uvicorn --app-dir bench bare_insert_app:create_app --factory --port 8001

The table (`SCHEMA`) must exist; `send.py` creates it in its fresh database.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg  # type: ignore[import-untyped]
from fastapi import FastAPI, Header, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field

# Shaped like Parley's `messages`: same columns, the same unique key and index (no FKs).
SCHEMA = """
CREATE TABLE IF NOT EXISTS bare_messages (
    id BIGSERIAL PRIMARY KEY,
    chat_id BIGINT NOT NULL,
    author_id BIGINT NOT NULL,
    text TEXT NOT NULL,
    client_id VARCHAR(64),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    edited_at TIMESTAMPTZ,
    deleted_at TIMESTAMPTZ,
    UNIQUE (chat_id, author_id, client_id)
);
CREATE INDEX IF NOT EXISTS ix_bare_messages_chat_id_id ON bare_messages (chat_id, id);
"""

INSERT = """
INSERT INTO bare_messages (chat_id, author_id, text, client_id)
VALUES ($1, $2, $3, $4)
RETURNING id, chat_id, author_id, text, client_id, created_at, edited_at, deleted_at
"""


class MessageIn(BaseModel):
    """The same body Parley takes."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4000)
    clientId: str | None = Field(default=None, min_length=1, max_length=64)  # noqa: N815


def create_app() -> FastAPI:
    """The baseline app; its pool (10 to 30 connections, like Parley's) lives in the lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(os.environ["BARE_DATABASE_URL"], min_size=10, max_size=30)
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/api/v1/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/v1/chats/{chat_id}/messages", status_code=status.HTTP_201_CREATED)
    async def send_message(
        chat_id: Annotated[int, Path(ge=1)],
        body: MessageIn,
        request: Request,
        x_bench_author: Annotated[int, Header(ge=1)] = 1,
    ) -> dict[str, Any]:
        pool: asyncpg.Pool = request.app.state.pool
        row = await pool.fetchrow(INSERT, chat_id, x_bench_author, body.text, body.clientId)
        assert row is not None
        return {
            "id": row["id"],
            "chatId": row["chat_id"],
            "authorId": row["author_id"],
            "text": row["text"],
            "clientId": row["client_id"],
            "createdAt": row["created_at"],
            "editedAt": row["edited_at"],
            "deletedAt": row["deleted_at"],
        }

    return app
