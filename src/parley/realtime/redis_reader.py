"""The live connections of a process: subscribed to every live channel, all the time.

On one Redis that is one connection; on a Redis Cluster one per master, each subscribed to
the channels of the partitions it serves (`redis_clients`). Either way the reader heals by
itself: any failure of any of them (Redis restarted, killed, paused, failed over, a dropped
connection, a channel the server gave up because its slot moved) ends in new connections,
subscribed again to Redis as it is then, after which listeners are told that live delivery
may have missed events (they refill from the log). `healthy` is true only while every
subscription is confirmed and every connection answered a ping recently, so a process that
cannot deliver says so in its health check.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger("parley.bus.reader")

PING_EVERY_SECONDS = 1.0
# No answer to a ping for this long: the connection is treated as lost.
SILENCE_LIMIT_SECONDS = 3.0
CONFIRM_TIMEOUT_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 1.0

Deliver = Callable[[str, str], None]
"""Called with the channel and the text of each live message."""


class SubscriptionLost(Exception):
    """The server ended a subscription by itself (its slot moved to another master)."""


class Feed:
    """One subscribed connection: confirms its subscriptions, then reads and pings it."""

    def __init__(
        self,
        channels: Sequence[str],
        *,
        read: Callable[[float], Awaitable[dict[str, Any] | None]],
        ping: Callable[[], Awaitable[object]],
        confirm_type: str,
    ) -> None:
        self.channels = list(channels)
        self._read = read
        self._ping = ping
        self._confirm_type = confirm_type
        self._waiting = set(self.channels)
        self.last_heard = 0.0

    async def confirm(self, deliver: Deliver, on_gap: Callable[[], None]) -> None:
        """Return once the server has confirmed every channel; raises after a timeout."""
        async with asyncio.timeout(CONFIRM_TIMEOUT_SECONDS):
            while self._waiting:
                message = await self._read(1.0)
                if message is not None:
                    self._handle(message, deliver, on_gap)
        self.last_heard = time.monotonic()

    async def run(self, deliver: Deliver, on_gap: Callable[[], None]) -> None:
        """Read and ping until the connection fails (raises) or the task is cancelled."""
        last_ping = time.monotonic()
        while True:
            message = await self._read(0.5)
            now = time.monotonic()
            if message is not None:
                self.last_heard = now
                self._handle(message, deliver, on_gap)
            if now - last_ping >= PING_EVERY_SECONDS:
                last_ping = now
                await asyncio.wait_for(self._ping(), SILENCE_LIMIT_SECONDS)
            if now - self.last_heard > SILENCE_LIMIT_SECONDS:
                raise TimeoutError(f"no answer from Redis for {SILENCE_LIMIT_SECONDS:g} s")

    def _handle(
        self, message: dict[str, Any], deliver: Deliver, on_gap: Callable[[], None]
    ) -> None:
        kind = message.get("type")
        channel = _text(message.get("channel"))
        if kind in ("message", "smessage"):
            deliver(channel, _text(message.get("data")))
        elif kind == self._confirm_type:
            if self._waiting:
                self._waiting.discard(channel)
            else:
                # redis-py reconnected and subscribed again by itself: whatever was
                # published in between never arrived.
                log.info("pub/sub reconnected by the client library; listeners refill")
                on_gap()
        elif kind in ("unsubscribe", "sunsubscribe"):
            raise SubscriptionLost(f"the server ended the subscription to {channel}")
        # pongs only prove that the connection is alive (`last_heard`)


@dataclass
class Subscription:
    """Feeds that together cover every live channel, and how to close their connections."""

    feeds: list[Feed]
    close: Callable[[], Awaitable[None]]


Subscribe = Callable[[], Awaitable[Subscription]]
"""Opens new connections and sends the subscriptions (the feeds then confirm them)."""


class PubSubReader:
    """Reads live messages for this process and passes them to `deliver`."""

    def __init__(self, subscribe: Subscribe, deliver: Deliver, on_gap: Callable[[], None]) -> None:
        self._subscribe = subscribe
        self._deliver = deliver
        self._on_gap = on_gap
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._subscription: Subscription | None = None
        self._confirmed = False
        self._ready = asyncio.Event()
        self.error: str | None = "not started"

    @property
    def healthy(self) -> bool:
        """True while subscribed (confirmed) and every connection was heard from lately."""
        subscription = self._subscription
        if not self._confirmed or subscription is None:
            return False
        if self._task is None or self._task.done():
            return False
        now = time.monotonic()
        return all(now - feed.last_heard < SILENCE_LIMIT_SECONDS for feed in subscription.feeds)

    def start(self) -> None:
        """Start reading in the background."""
        self._task = asyncio.create_task(self._run(), name="parley-bus-reader")

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until the first subscription is confirmed; False on timeout."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        return self._ready.is_set()

    async def close(self, timeout: float) -> None:
        """Stop reading and close the connections."""
        # The loop also checks the flag: a cancellation landing inside a redis-py call can be
        # swallowed there, and the loop would otherwise go on.
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=timeout)
        await self._drop_connections()

    async def _run(self) -> None:
        backoff = 0.05
        connected_before = False
        while not self._closing:
            try:
                await self._connect()
            except Exception as exc:  # any failure: new connections after a pause
                self._mark_down(f"subscribe failed: {type(exc).__name__}: {exc}")
                await self._drop_connections()
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
            except Exception as exc:  # whatever broke, the next connections start afresh
                self._mark_down(f"connection lost: {type(exc).__name__}: {exc}")
            await self._drop_connections()

    async def _connect(self) -> None:
        self._subscription = await asyncio.wait_for(self._subscribe(), CONFIRM_TIMEOUT_SECONDS)
        feeds = self._subscription.feeds
        await asyncio.gather(*(feed.confirm(self._deliver, self._on_gap) for feed in feeds))
        self._confirmed = True
        self.error = None

    async def _read_until_broken(self) -> None:
        """Run every feed until one of them fails; that failure is raised."""
        assert self._subscription is not None
        tasks = [
            asyncio.create_task(feed.run(self._deliver, self._on_gap))
            for feed in self._subscription.feeds
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            # Every failure is retrieved (several connections often fail together).
            failures = [task.exception() for task in tasks if not task.cancelled()]
        raise next((f for f in failures if f is not None), None) or RuntimeError(
            "a live connection stopped reading"
        )

    def _mark_down(self, error: str) -> None:
        if self._confirmed or self.error != error:
            log.warning("live delivery interrupted", error=error[:300])
        self._confirmed = False
        self.error = error

    async def _drop_connections(self) -> None:
        subscription, self._subscription = self._subscription, None
        self._confirmed = False
        if subscription is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(subscription.close(), 1.0)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
