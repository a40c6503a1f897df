"""The services-mode bus: a Redis Stream per user for the log, pub/sub for live delivery.

One Lua script appends an event to a user's stream and publishes it in the same atomic step,
so every subscriber sees a user's events in stream order. Each process holds a single pub/sub
connection, subscribed to the channels of the users it currently serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis.asyncio as redis
import structlog
from redis.asyncio.client import PubSub
from redis.asyncio.connection import Connection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from parley.ops.metrics import EVENTS_PUBLISHED
from parley.realtime.bus import Bus, ReplayUnavailable
from parley.realtime.codec import Frame, encode_body, parse_event_id, with_id, without_id

log = structlog.get_logger("parley.bus")

STREAM_PREFIX = "parley:events:"
CHANNEL_PREFIX = "parley:live:"
SUBSCRIBE_CONFIRM_TIMEOUT = 5.0
# A user's stream outlives its newest event by at least this long (then it is collected).
STREAM_IDLE_EXPIRY_MS = 3_600_000

# KEYS: stream keys. ARGV[1]: encoded body, ARGV[2]: max events, ARGV[3]: max age in ms,
# ARGV[4...]: channel names (one per key), then the idle expiry of a stream in ms.
# For each user: XADD, PUBLISH the frame with its id, and now and then trim the entries that
# are both beyond the newest max_events and older than max age, remembering the newest id
# trimmed (`<key>:dropped`) so that a resume from before it is answered with a resync.
PUBLISH_SCRIPT = """
local body = ARGV[1]
local max_events = tonumber(ARGV[2])
local max_age = tonumber(ARGV[3])
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
for i, key in ipairs(KEYS) do
  local id = redis.call('XADD', key, '*', 'b', body)
  redis.call('PUBLISH', ARGV[3 + i], '{"id":"' .. id .. '",' .. body)
  redis.call('PEXPIRE', key, tonumber(ARGV[4 + #KEYS]))
  local len = redis.call('XLEN', key)
  -- Checked every 32 appends so that a log kept long by its age does not cost O(n) each time.
  if len > max_events + math.max(16, math.floor(max_events / 8)) and len % 32 == 0 then
    local keep = redis.call('XREVRANGE', key, '+', '-', 'COUNT', max_events)
    local oldest_kept = keep[#keep][1]
    local ms = tonumber(string.match(oldest_kept, '^(%d+)'))
    local cut = oldest_kept
    if ms > now_ms - max_age then cut = tostring(now_ms - max_age) end
    local last_dropped = redis.call('XREVRANGE', key, '(' .. cut, '-', 'COUNT', 1)
    if #last_dropped > 0 then
      redis.call('SET', key .. ':dropped', last_dropped[1][1], 'PX', tonumber(ARGV[4 + #KEYS]))
      redis.call('XTRIM', key, 'MINID', cut)
    end
  end
end
return #KEYS
"""


# KEYS[1]: a user's presence hash (process id -> open sockets). ARGV: process id, delta,
# prefix of the per-process liveness keys, their TTL (the caller is alive: it renews its own).
# Counts of processes that stopped heartbeating are dropped, so a crashed process does not
# keep its users online forever.
PRESENCE_SCRIPT = """
redis.call('SET', ARGV[3] .. ARGV[1], '1', 'EX', ARGV[4])
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
local total = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if redis.call('EXISTS', ARGV[3] .. all[i]) == 1 then
    total = total + tonumber(all[i + 1])
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return total
"""
PRESENCE_PREFIX = "parley:presence:"
PROCESS_PREFIX = "parley:process:"
PROCESS_TTL_SECONDS = 30
# How long close() waits for the reader and heartbeat to stop after cancelling them.
CLOSE_TIMEOUT_SECONDS = 5.0


class _ReconnectAwarePubSub(PubSub):
    """redis-py re-subscribes by itself after a lost connection; this also says it happened,
    since whatever was published meanwhile never arrives."""

    def __init__(self, pool: ConnectionPool, on_reconnect: Callable[[], None]) -> None:
        super().__init__(pool)
        self._on_reconnect = on_reconnect

    async def on_connect(self, connection: Connection) -> None:
        await super().on_connect(connection)
        self._on_reconnect()


def stream_key(user_id: int) -> str:
    """The Redis key of a user's event log."""
    return f"{STREAM_PREFIX}{user_id}"


def channel_prefix(db: int) -> str:
    """Pub/sub channels are shared by all of a Redis server's databases: name ours after ours,
    so that two deployments on one server (different db numbers) never see each other."""
    return f"{CHANNEL_PREFIX}{db}:"


class RedisBus(Bus):
    """Event log in Redis Streams, live fan-out over one pub/sub connection per process."""

    def __init__(self, url: str, *, max_events: int, max_age_seconds: float) -> None:
        super().__init__()
        self._redis = redis.from_url(url, decode_responses=True, health_check_interval=10)
        self._max_events = max_events
        self._max_age_ms = int(max_age_seconds * 1000)
        self._script = self._redis.register_script(PUBLISH_SCRIPT)
        self._presence_script = self._redis.register_script(PRESENCE_SCRIPT)
        self._pubsub = self._new_pubsub()
        self._reader: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._confirmations: dict[str, asyncio.Event] = {}
        self._process_id = uuid.uuid4().hex
        self._closing = False
        self._channel_prefix = channel_prefix(
            int(self._redis.connection_pool.connection_kwargs.get("db", 0))
        )

    @property
    def client(self) -> redis.Redis:
        """The process's Redis client (command pool), for other users of the same Redis."""
        return self._redis

    def _channel(self, user_id: int) -> str:
        return f"{self._channel_prefix}{user_id}"

    async def start(self) -> None:
        """Start the pub/sub reader and this process's presence heartbeat."""
        await self._beat()
        self._reader = asyncio.create_task(self._read_forever(), name="parley-bus-reader")
        self._heartbeat = asyncio.create_task(self._beat_forever(), name="parley-bus-heartbeat")

    async def close(self) -> None:
        """Stop reading and close every connection."""
        # The loops also check the flag: a cancellation that lands inside a redis-py call
        # can be swallowed there, and the loop would otherwise go on forever.
        self._closing = True
        tasks = [t for t in (self._reader, self._heartbeat) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_SECONDS)
        with contextlib.suppress(Exception):
            await self._redis.delete(PROCESS_PREFIX + self._process_id)
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._redis.aclose()

    async def ping(self) -> None:
        """A round trip to Redis."""
        await self._redis.ping()

    async def publish(
        self, user_ids: Iterable[int], event_type: str, data: Mapping[str, Any]
    ) -> None:
        """Append to each user's stream and publish, atomically per call."""
        users = list(dict.fromkeys(user_ids))
        if not users:
            return
        EVENTS_PUBLISHED.labels(event_type).inc(len(users))
        await self._script(
            keys=[stream_key(u) for u in users],
            args=[
                encode_body(event_type, data),
                self._max_events,
                self._max_age_ms,
                *(self._channel(u) for u in users),
                max(2 * self._max_age_ms, STREAM_IDLE_EXPIRY_MS),
            ],
        )

    async def publish_ephemeral(
        self, user_ids: Iterable[int], event_type: str, data: Mapping[str, Any]
    ) -> None:
        """Publish without logging."""
        text = without_id(encode_body(event_type, data))
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in dict.fromkeys(user_ids):
                pipe.publish(self._channel(user_id), text)
            await pipe.execute()

    async def replay(self, user_id: int, after_id: str) -> list[Frame]:
        """Stream entries after `after_id`; ReplayUnavailable if the stream dropped some."""
        after = parse_event_id(after_id)
        if after is None:
            raise ReplayUnavailable(after_id)
        key = stream_key(user_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(key + ":dropped")
            pipe.xrange(key, min="-", max="+", count=1)
            pipe.xrange(key, min="(" + after_id, max="+")
            dropped_id, first, entries = await pipe.execute()
        if not first:  # expired after a long silence, or Redis lost its data
            raise ReplayUnavailable(after_id)
        # In one continuous stream every id a client holds is either still there, or trimmed
        # (at most the newest trimmed id). Anything else comes from a stream that was lost
        # (a Redis restart) and what followed it cannot be known.
        first_id = parse_event_id(str(first[0][0])) or (0, 0)
        dropped = parse_event_id(str(dropped_id)) if dropped_id else None
        if after < first_id and after != dropped:
            raise ReplayUnavailable(after_id)
        frames = []
        for eid, fields in entries or []:
            event_id, body = str(eid), str((fields or {})["b"])
            frames.append(Frame(event_id, with_id(event_id, body)))
        return frames

    async def presence_join(self, user_id: int) -> bool:
        """Count a socket in Redis; True when it is the user's first on any live process."""
        total = await self._presence_script(
            keys=[PRESENCE_PREFIX + str(user_id)],
            args=[self._process_id, 1, PROCESS_PREFIX, PROCESS_TTL_SECONDS],
        )
        return int(total) == 1

    async def presence_leave(self, user_id: int) -> bool:
        """Uncount a socket; True when the user has none left on any live process."""
        total = await self._presence_script(
            keys=[PRESENCE_PREFIX + str(user_id)],
            args=[self._process_id, -1, PROCESS_PREFIX, PROCESS_TTL_SECONDS],
        )
        return int(total) == 0

    async def _beat(self) -> None:
        await self._redis.set(PROCESS_PREFIX + self._process_id, "1", ex=PROCESS_TTL_SECONDS)

    async def _beat_forever(self) -> None:
        while not self._closing:
            await asyncio.sleep(PROCESS_TTL_SECONDS / 3)
            with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                await self._beat()

    async def _subscribe(self, user_id: int) -> None:
        # Wait for Redis to confirm, so that a replay read after this cannot miss an event
        # published between the read and the subscription.
        name = self._channel(user_id)
        confirmed = self._confirmations.setdefault(name, asyncio.Event())
        await self._pubsub.subscribe(name)
        self._subscribed.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(confirmed.wait(), SUBSCRIBE_CONFIRM_TIMEOUT)
        self._confirmations.pop(name, None)

    async def _unsubscribe(self, user_id: int) -> None:
        with contextlib.suppress(RedisConnectionError, RedisTimeoutError):
            await self._pubsub.unsubscribe(self._channel(user_id))

    def _new_pubsub(self) -> PubSub:
        return _ReconnectAwarePubSub(self._redis.connection_pool, self._notify_gap)

    async def _read_forever(self) -> None:
        backoff = 0.1
        broken = False
        while not self._closing:
            if not self._listeners:
                self._subscribed.clear()
                await self._subscribed.wait()
                continue
            if broken:
                try:
                    await self._resubscribe()
                except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                    log.warning("pubsub still unavailable", error=str(exc))
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                broken, backoff = False, 0.1
                self._notify_gap()
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (RedisConnectionError, RedisTimeoutError, OSError, RuntimeError) as exc:
                log.warning("pubsub connection lost; resubscribing", error=str(exc))
                broken = True
                continue
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        name = message["channel"]
        if message.get("type") == "subscribe":
            confirmed = self._confirmations.get(name)
            if confirmed is not None:
                confirmed.set()
            return
        if message.get("type") != "message":
            return
        text = message["data"]
        user_id = int(name[len(self._channel_prefix) :])
        event_id = None
        if text.startswith('{"id":"'):
            event_id = text[7 : text.index('"', 7)]
        self._deliver(user_id, Frame(event_id, text))

    async def _resubscribe(self) -> None:
        """After a lost connection: subscribe again to every user still listened to."""
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        self._pubsub = self._new_pubsub()
        users = list(self._listeners)
        if users:
            await self._pubsub.subscribe(*(self._channel(u) for u in users))

    def _notify_gap(self) -> None:
        """Live delivery may have missed events while disconnected: tell every listener."""
        gap = Frame(None, "")
        for user_id in list(self._listeners):
            self._deliver(user_id, gap)
