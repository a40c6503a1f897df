"""The one pub/sub connection of a process: subscribed to every live channel, all the time.

It heals by itself: any failure (Redis restarted, killed, paused, a dropped connection)
ends in a new connection, subscribed again, after which listeners are told that live
delivery may have missed events (they refill from the log). `healthy` is true only while
the subscriptions are confirmed and Redis answered a ping recently, so a process that
cannot deliver says so in its health check.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from redis.exceptions import RedisError

log = structlog.get_logger("parley.bus.reader")

PubSubFactory = Callable[[], Any]
PING_EVERY_SECONDS = 1.0
# No answer to a ping for this long: the connection is treated as lost.
SILENCE_LIMIT_SECONDS = 3.0
CONFIRM_TIMEOUT_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 1.0


class PubSubReader:
    """Reads live messages for this process and passes them to `on_message`."""

    def __init__(
        self,
        new_pubsub: PubSubFactory,
        channels: list[str],
        on_message: Callable[[str, str], None],
        on_gap: Callable[[], None],
        *,
        subscribe: Callable[[Any, list[str]], Awaitable[None]],
        read: Callable[[Any, float], Awaitable[dict[str, Any] | None]],
        confirm_type: str = "subscribe",
    ) -> None:
        self._new_pubsub = new_pubsub
        self._channels = channels
        self._on_message = on_message
        self._on_gap = on_gap
        self._subscribe = subscribe
        self._read = read
        self._confirm_type = confirm_type
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._pubsub: Any = None
        self._confirmed = False
        self._last_heard = 0.0
        self._ready = asyncio.Event()
        self.error: str | None = "not started"

    @property
    def healthy(self) -> bool:
        """True while subscribed (confirmed) and heard from within the silence limit."""
        return (
            self._confirmed
            and self._task is not None
            and not self._task.done()
            and time.monotonic() - self._last_heard < SILENCE_LIMIT_SECONDS
        )

    def start(self) -> None:
        """Start reading in the background."""
        self._task = asyncio.create_task(self._run(), name="parley-bus-reader")

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until the first subscription is confirmed; False on timeout."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        return self._ready.is_set()

    async def close(self, timeout: float) -> None:
        """Stop reading and close the connection."""
        # The loop also checks the flag: a cancellation landing inside a redis-py call can be
        # swallowed there, and the loop would otherwise go on.
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=timeout)
        await self._drop_connection()

    async def _run(self) -> None:
        backoff = 0.05
        connected_before = False
        while not self._closing:
            try:
                await self._connect()
            except (RedisError, OSError, TimeoutError) as exc:
                self._mark_down(f"subscribe failed: {type(exc).__name__}: {exc}")
                await self._drop_connection()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
                continue
            backoff = 0.05
            if connected_before:
                log.info("live delivery restored; listeners refill from the log")
                self._on_gap()
            connected_before = True
            self._ready.set()
            try:
                await self._read_until_broken()
            except (RedisError, OSError, TimeoutError, RuntimeError) as exc:
                self._mark_down(f"connection lost: {type(exc).__name__}: {exc}")
            await self._drop_connection()

    async def _connect(self) -> None:
        self._pubsub = self._new_pubsub()
        await asyncio.wait_for(
            self._subscribe(self._pubsub, self._channels), CONFIRM_TIMEOUT_SECONDS
        )
        waiting = set(self._channels)
        async with asyncio.timeout(CONFIRM_TIMEOUT_SECONDS):
            while waiting:
                message = await self._read(self._pubsub, 1.0)
                if message is not None and message.get("type") == self._confirm_type:
                    waiting.discard(_text(message.get("channel")))
                elif message is not None:
                    self._dispatch(message)
        self._confirmed = True
        self._last_heard = time.monotonic()
        self.error = None

    async def _read_until_broken(self) -> None:
        last_ping = time.monotonic()
        while not self._closing:
            message = await self._read(self._pubsub, 0.5)
            now = time.monotonic()
            if message is not None:
                self._last_heard = now
                self._dispatch(message)
            if now - last_ping >= PING_EVERY_SECONDS:
                last_ping = now
                await asyncio.wait_for(self._pubsub.ping(), SILENCE_LIMIT_SECONDS)
            if now - self._last_heard > SILENCE_LIMIT_SECONDS:
                raise TimeoutError(f"no answer from Redis for {SILENCE_LIMIT_SECONDS:g} s")

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind in ("message", "smessage"):
            self._on_message(_text(message.get("channel")), _text(message.get("data")))
        elif kind == self._confirm_type and self._confirmed:
            # redis-py reconnected and subscribed again by itself: whatever was published
            # in between never arrived.
            log.info("pub/sub reconnected by the client library; listeners refill")
            self._on_gap()
        # pongs only prove that the connection is alive (`_last_heard`)

    def _mark_down(self, error: str) -> None:
        if self._confirmed or self.error != error:
            log.warning("live delivery interrupted", error=error[:300])
        self._confirmed = False
        self.error = error

    async def _drop_connection(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        self._confirmed = False
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pubsub.aclose(), 1.0)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
