"""The baseline for `bench/fanout.py`: the naive fan-out, one Redis connection per socket.

No database, no auth, no event log: every WebSocket opens its own Redis pub/sub connection
subscribed to its user's channel and relays what arrives; `POST /chats/{id}/messages`
PUBLISHes one `message.created` frame (shaped like Parley's) to each member's channel, the
member lists being held in memory. What Parley does instead — one pub/sub connection per
process, a per-user log in Redis Streams, a bounded queue per socket — is what `fanout.py`
compares against this.

    .venv/bin/python bench/naive_fanout.py --port 8001 --redis redis://127.0.0.1:6379/8 \\
        --chats chats.json      # {"<chat id>": [<user id>, ...], ...}

`--compression deflate` negotiates permessage-deflate with clients that offer it; `none`
(the default, as `parley serve` defaults to: PARLEY_WS_COMPRESSION=false) does not.

Endpoints: `GET /health`, `POST /chats/{chat_id}/messages` with `{"authorId", "text"}`,
`WS /ws?user=<id>` (answers `{"type": "ping"}` with `{"type": "pong"}`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import resource
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as redis
import uvicorn
from fastapi import FastAPI, HTTPException, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field

CHANNEL_PREFIX = "naivebench:live:"  # not Parley's prefix: pub/sub ignores the DB number
SUBSCRIBE_TIMEOUT = 30.0
MAX_SUBSCRIBERS = 100_000


class MessageIn(BaseModel):
    """A message to fan out."""

    author_id: int = Field(alias="authorId")
    text: str = Field(min_length=1, max_length=4000)


def channel(user_id: int) -> str:
    """The pub/sub channel of a user."""
    return f"{CHANNEL_PREFIX}{user_id}"


def create_app(redis_url: str, chats: Mapping[int, Sequence[int]]) -> FastAPI:
    """The naive app: `chats` maps a chat id to its member ids."""
    ids = itertools.count(1)
    clients: dict[str, redis.Redis] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Publishes borrow a pooled connection; each socket's pub/sub keeps one of its own
        # from an unbounded pool (redis-py caps a pool at 100 connections by default).
        clients["publish"] = redis.Redis.from_url(redis_url, decode_responses=True)
        clients["subscribe"] = redis.Redis.from_url(
            redis_url, decode_responses=True, max_connections=MAX_SUBSCRIBERS
        )
        try:
            yield
        finally:
            for client in clients.values():
                await client.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/chats/{chat_id}/messages", status_code=201)
    async def send_message(chat_id: int, body: MessageIn) -> dict[str, Any]:
        members = chats.get(chat_id)
        if members is None:
            raise HTTPException(404, "chat not found")
        now = datetime.now(UTC).isoformat()
        message = {
            "id": next(ids),
            "chatId": chat_id,
            "authorId": body.author_id,
            "text": body.text,
            "createdAt": now,
        }
        frame = json.dumps(
            {"type": "message.created", "ts": now, "data": message},
            separators=(",", ":"),
            ensure_ascii=False,
        )
        async with clients["publish"].pipeline(transaction=False) as pipe:
            for user_id in members:
                pipe.publish(channel(user_id), frame)
            await pipe.execute()
        return message

    @app.websocket("/ws")
    async def events(websocket: WebSocket, user: int) -> None:
        await websocket.accept()
        pubsub = clients["subscribe"].pubsub()
        relay: asyncio.Task[None] | None = None
        try:
            await pubsub.subscribe(channel(user))
            # Wait for Redis to confirm, so nothing published after the pong is missed.
            await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT)
            relay = asyncio.create_task(_relay(pubsub, websocket))
            while True:
                raw = await websocket.receive_text()
                if '"ping"' in raw:
                    await websocket.send_text('{"type":"pong"}')
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            if relay is not None:
                relay.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await relay
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    return app


async def _relay(pubsub: redis.client.PubSub, websocket: WebSocket) -> None:
    """Forward every message of the subscription to the socket, in order."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        async for message in pubsub.listen():
            if message.get("type") == "message":
                await websocket.send_text(message["data"])


def _raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True, help="Redis URL")
    parser.add_argument("--chats", type=Path, required=True, help="JSON {chat id: [user ids]}")
    parser.add_argument("--heartbeat", type=float, default=20.0, help="WebSocket ping interval")
    parser.add_argument(
        "--compression",
        choices=["deflate", "none"],
        default="none",
        help="permessage-deflate for clients that offer it (Parley: PARLEY_WS_COMPRESSION)",
    )
    args = parser.parse_args(argv)
    _raise_fd_limit(8192)
    raw = json.loads(args.chats.read_text())
    chats = {int(k): [int(u) for u in v] for k, v in raw.items()}
    uvicorn.run(
        create_app(args.redis, chats),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=3,
        ws_ping_interval=args.heartbeat,  # as `parley serve` does
        ws_ping_timeout=args.heartbeat,
        ws_per_message_deflate=args.compression == "deflate",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
