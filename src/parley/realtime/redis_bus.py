"""The services-mode bus: a Redis Stream per user for the log, pub/sub for live delivery.

Appending is one Lua script per outbox row and partition (see `redis_layout`): it adds the
event to each recipient's stream and publishes one fan-out message on the partition's
channel, atomically, and only once per row (a marker key), so a retry or a second relay
never logs an event twice. Every process holds one pub/sub connection subscribed to every
partition's channel (`redis_reader`), and picks out the recipients it has sockets for.

A Redis restart is noticed on the first new connection to it (its `run_id` changed): the
fast path is closed at once, so that nothing published after the restart overtakes what
the relay still has to publish or republish.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import redis.asyncio as redis
import structlog
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from parley.ops.metrics import EVENTS_PUBLISHED
from parley.realtime import redis_scripts
from parley.realtime.bus import (
    Appended,
    Bus,
    BusUnavailable,
    LogEvent,
    Position,
    ReplayUnavailable,
)
from parley.realtime.codec import (
    Frame,
    encode_body,
    encode_ephemeral,
    parse_event_id,
    parse_fanout,
    with_id,
)
from parley.realtime.redis_layout import RedisLayout
from parley.realtime.redis_reader import PubSubReader

log = structlog.get_logger("parley.bus")

# A user's log outlives its newest event by at least this long (then it is collected).
STREAM_IDLE_EXPIRY_MS = 3_600_000
# The fast path stays open this long after the relay last found nothing held back.
GATE_LEASE_MS = 2_000
# An appended row is remembered this long: publishing it again within it does nothing.
MARKER_TTL_MS = 3_600_000
# A claim on sending a job row lasts this long while the send is under way.
SEND_CLAIM_MS = 30_000
PROCESS_LEASE_MS = 30_000
COMMAND_TIMEOUT_SECONDS = 2.0
CLOSE_TIMEOUT_SECONDS = 5.0


class RedisBus(Bus):
    """Event logs in Redis Streams, live fan-out over one pub/sub connection per process."""

    def __init__(self, url: str, *, max_events: int, max_age_seconds: float) -> None:
        super().__init__()
        self._redis = redis.from_url(
            url,
            decode_responses=True,
            health_check_interval=10,
            socket_timeout=COMMAND_TIMEOUT_SECONDS,
            socket_connect_timeout=COMMAND_TIMEOUT_SECONDS,
            # One retry covers a pooled connection that died with a restarted server; more
            # would only make a caller wait longer during an outage.
            retry=Retry(NoBackoff(), 1),
            redis_connect_func=self._on_connect,
        )
        db = int(self._redis.connection_pool.connection_kwargs.get("db", 0))
        self.layout = RedisLayout(partitions=1, scope=str(db))
        self._max_events = max_events
        self._max_age_ms = int(max_age_seconds * 1000)
        self._append = self._redis.register_script(redis_scripts.APPEND)
        self._position = self._redis.register_script(redis_scripts.POSITION)
        self._presence = self._redis.register_script(redis_scripts.PRESENCE)
        self._lease = self._redis.register_script(redis_scripts.LEASE)
        self._close_gate = self._redis.register_script(redis_scripts.CLOSE_GATE)
        self._reopen_gate = self._redis.register_script(redis_scripts.REOPEN_GATE)
        self._process_id = uuid.uuid4().hex
        self._run_id: str | None = None
        self._generation = 0
        self._reader = PubSubReader(
            self._redis.pubsub,
            self.layout.channels(),
            self._on_live_message,
            self._signal_gap,
            subscribe=_subscribe,
            read=_read,
        )
        self._lease_task: asyncio.Task[None] | None = None

    @property
    def client(self) -> redis.Redis:
        """The process's Redis client (command pool), for other users of the same Redis."""
        return self._redis

    @property
    def generation(self) -> int:
        """Bumped each time a connection finds Redis restarted since the last one."""
        return self._generation

    async def start(self) -> None:
        """Start reading live messages; waits briefly for the first subscription."""
        with contextlib.suppress(RedisError, OSError):
            await self._renew_leases()
            await self._mark_epochs()
        self._reader.start()
        await self._reader.wait_ready(COMMAND_TIMEOUT_SECONDS)
        self._lease_task = asyncio.create_task(self._lease_forever(), name="parley-bus-lease")

    async def close(self) -> None:
        """Stop reading and close every connection."""
        if self._lease_task is not None:
            self._lease_task.cancel()
            await asyncio.wait([self._lease_task], timeout=CLOSE_TIMEOUT_SECONDS)
        await self._reader.close(CLOSE_TIMEOUT_SECONDS)
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    async def check(self) -> None:
        """Raise unless this process is subscribed and hears from Redis."""
        if not self._reader.healthy:
            raise BusUnavailable(self._reader.error or "live delivery is not running")

    # -- appending ------------------------------------------------------------------------

    async def append(self, events: Sequence[LogEvent], *, gated: bool) -> list[Appended]:
        """Append each row's event in every partition of its recipients (one pipeline)."""
        calls: list[tuple[int, int]] = []  # (event index, partition) per script call
        async with self._redis.pipeline(transaction=False) as pipe:
            for index, event in enumerate(events):
                for partition, users in self.layout.by_partition(event.recipients).items():
                    calls.append((index, partition))
                    await self._append(
                        keys=[
                            self.layout.marker_prefix(partition) + str(event.row_id),
                            self.layout.gate(partition),
                            self.layout.deferred(partition),
                            *(self.layout.stream(u) for u in users),
                        ],
                        args=[
                            event.body,
                            self._max_events,
                            self._max_age_ms,
                            max(2 * self._max_age_ms, STREAM_IDLE_EXPIRY_MS),
                            self.layout.channel(partition),
                            "1" if gated else "0",
                            event.row_id,
                            MARKER_TTL_MS,
                            "PUBLISH",
                            *users,
                        ],
                        client=pipe,
                    )
            replies = await pipe.execute() if calls else []
        outcome: list[set[int]] = [set() for _ in events]
        for (index, _), reply in zip(calls, replies, strict=True):
            outcome[index].add(int(reply))
        results = []
        for event, codes in zip(events, outcome, strict=True):
            if -1 in codes:
                results.append(Appended.DEFERRED)
            elif 1 in codes:
                EVENTS_PUBLISHED.labels(event.event_type).inc(len(set(event.recipients)))
                results.append(Appended.LOGGED)
            else:
                results.append(Appended.DUPLICATE)
        return results

    async def publish_ephemeral(
        self, user_ids: Iterable[int], event_type: str, data: Mapping[str, Any]
    ) -> None:
        """Publish without logging: one message per partition of the recipients."""
        body = encode_body(event_type, data)
        groups = self.layout.by_partition(dict.fromkeys(user_ids))
        if not groups:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for partition, users in groups.items():
                pipe.publish(self.layout.channel(partition), encode_ephemeral(users, body))
            await pipe.execute()

    # -- reading a position ---------------------------------------------------------------

    async def position(self, user_id: int, after_id: str | None) -> Position:
        """Replay after `after_id` from the user's stream; see `redis_scripts.POSITION`."""
        if after_id is not None and parse_event_id(after_id) is None:
            raise ReplayUnavailable(after_id)
        reply = await self._position(
            keys=[
                self.layout.stream(user_id),
                self.layout.base(user_id),
                self.layout.dropped(user_id),
            ],
            args=[after_id or "", max(2 * self._max_age_ms, STREAM_IDLE_EXPIRY_MS)],
        )
        if not reply or int(reply[0]) != 1:
            raise ReplayUnavailable(after_id or "")
        flat = reply[2:]
        frames = [
            Frame(str(flat[i]), with_id(str(flat[i]), str(flat[i + 1])))
            for i in range(0, len(flat), 2)
        ]
        last = frames[-1].event_id if frames else None
        return Position(frames, last or str(reply[1]))

    # -- live delivery ----------------------------------------------------------------------

    def _on_live_message(self, channel: str, text: str) -> None:
        fanout = parse_fanout(text)
        if fanout is None:
            log.warning("ignored a malformed live message", channel=channel)
            return
        for user_id, event_id in fanout.recipients:
            if user_id in self._listeners:
                self._deliver(user_id, fanout.frame_for(event_id))

    # -- the outbox's gate, send claims and restarts -----------------------------------------

    async def close_gate(self, deferred_row_ids: Sequence[int] = ()) -> None:
        """Close every partition's fast path, recording the rows it turned away."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for partition in range(self.layout.partitions):
                await self._close_gate(
                    keys=[self.layout.gate(partition), self.layout.deferred(partition)],
                    args=list(deferred_row_ids),
                    client=pipe,
                )
            await pipe.execute()

    async def reopen_gate(self) -> bool:
        """Open every partition's fast path unless one still has unappended deferred rows."""
        opened = True
        for partition in range(self.layout.partitions):
            reply = await self._reopen_gate(
                keys=[self.layout.gate(partition), self.layout.deferred(partition)],
                args=[self.layout.marker_prefix(partition), GATE_LEASE_MS],
            )
            opened = opened and int(reply) == 1
        return opened

    async def gate_is_open(self) -> bool:
        """Renew every open gate's lease; False when one of them is closed."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for partition in range(self.layout.partitions):
                pipe.set(self.layout.gate(partition), "1", px=GATE_LEASE_MS, xx=True)
            replies = await pipe.execute()
        return all(bool(r) for r in replies)

    async def claim_send(self, key: str) -> bool:
        """Claim a job row's send for a while; False when sent or being sent."""
        claimed = await self._redis.set(
            self.layout.send_claim(key), "sending", nx=True, px=SEND_CLAIM_MS
        )
        return bool(claimed)

    async def release_send(self, key: str, *, sent: bool) -> None:
        """Keep the claim of a sent job (for the marker's life); drop an unsent one."""
        name = self.layout.send_claim(key)
        if sent:
            await self._redis.set(name, "sent", px=MARKER_TTL_MS)
        else:
            await self._redis.delete(name)

    async def kept_its_data(self) -> bool:
        """False when Redis came back without its data (the epoch keys are gone)."""
        names = [self.layout.epoch(p) for p in range(self.layout.partitions)]
        present = int(await self._redis.exists(*names))
        await self._mark_epochs()
        return present == len(names)

    async def _mark_epochs(self) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for partition in range(self.layout.partitions):
                pipe.set(self.layout.epoch(partition), "1", nx=True)
            await pipe.execute()

    async def _on_connect(self, connection: AbstractConnection) -> None:
        """Set up a new connection, and notice a restarted server before using it."""
        await connection.on_connect()
        await connection.send_command("INFO", "server")
        info = await connection.read_response()
        run_id = _run_id_of(info)
        if run_id is None or run_id == self._run_id:
            return
        if self._run_id is not None:
            self._generation += 1
            log.warning("Redis restarted: the fast path closes until the relay has caught up")
            for partition in range(self.layout.partitions):
                await connection.send_command("DEL", self.layout.gate(partition))
                await connection.read_response()
        self._run_id = run_id

    # -- presence -------------------------------------------------------------------------

    async def presence_join(self, user_id: int) -> bool:
        """Count a socket in Redis; True when it is the user's first on any live process."""
        return int(await self._count_socket(user_id, 1)) == 1

    async def presence_leave(self, user_id: int) -> bool:
        """Uncount a socket; True when the user has none left on any live process."""
        return int(await self._count_socket(user_id, -1)) == 0

    async def _count_socket(self, user_id: int, delta: int) -> int:
        partition = self.layout.partition_of(user_id)
        total = await self._presence(
            keys=[self.layout.presence(user_id), self.layout.processes(partition)],
            args=[self._process_id, delta, PROCESS_LEASE_MS],
        )
        return int(total)

    async def _renew_leases(self) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for partition in range(self.layout.partitions):
                await self._lease(
                    keys=[self.layout.processes(partition)],
                    args=[self._process_id, PROCESS_LEASE_MS],
                    client=pipe,
                )
            await pipe.execute()

    async def _lease_forever(self) -> None:
        while True:
            await asyncio.sleep(PROCESS_LEASE_MS / 3000)
            with contextlib.suppress(RedisError, OSError):
                await self._renew_leases()


async def _subscribe(pubsub: Any, channels: list[str]) -> None:
    await pubsub.subscribe(*channels)


async def _read(pubsub: Any, timeout: float) -> dict[str, Any] | None:
    message: dict[str, Any] | None = await pubsub.get_message(timeout=timeout)
    return message


def _run_id_of(info: Any) -> str | None:
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith("run_id:"):
            return line.split(":", 1)[1].strip()
    return None
