"""The services-mode bus: a Redis Stream per user for the log, pub/sub for live delivery.

Appending is one Lua script per outbox row and partition (see `redis_layout`): it adds the
event to each recipient's stream and publishes one fan-out message on the partition's
channel, atomically, and only once per row (a marker key), so a retry or a second relay
never logs an event twice. Every process subscribes to every partition's channel
(`redis_reader`), and picks out the recipients it has sockets for.

On one Redis there is one partition and one pub/sub connection per process. On a Redis
Cluster (`cluster=True`) users spread over many partitions, hence over the masters; the
channels are sharded (`SPUBLISH`), and a process holds one pub/sub connection per master.

A partition found on another server than the one the relay last confirmed it on (Redis
restarted, or a replica took over in a failover: either may have lost the newest writes)
closes its fast path at once, in the script that finds it, and the relay republishes the
recent events before it opens again (`redis_servers`), so that nothing is lost and nothing
published after the change overtakes what the relay still has to publish or republish.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

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
from parley.realtime.redis_clients import (
    cluster_client,
    single_client,
    subscribe_cluster,
    subscribe_single,
)
from parley.realtime.redis_layout import RedisLayout
from parley.realtime.redis_pipeline import RedisClient, ScriptCall, run_scripts
from parley.realtime.redis_reader import PubSubReader, Subscription
from parley.realtime.redis_servers import ServerBook

log = structlog.get_logger("parley.bus")

# The fast path stays open this long after the relay last found nothing held back.
GATE_LEASE_MS = 2_000
# An appended row is remembered this long: publishing it again within it does nothing.
MARKER_TTL_MS = 3_600_000
# A claim on sending a job row lasts this long while the send is under way.
SEND_CLAIM_MS = 30_000
PROCESS_LEASE_MS = 30_000
STARTUP_WAIT_SECONDS = 2.0
CLOSE_TIMEOUT_SECONDS = 5.0
REDIS_ERRORS = (RedisError, RedisClusterException, OSError)

# The scripts' answers about a partition's server (see redis_scripts)
DEFERRED, MOVED, UNCONFIRMED = -1, -2, -3


class ServerChanged(BusUnavailable):
    """A partition moved to another Redis server: the relay must republish first."""


class RedisBus(Bus):
    """Event logs in Redis Streams, live fan-out over pub/sub; one Redis or a Redis Cluster."""

    def __init__(
        self,
        url: str,
        *,
        max_events: int,
        max_age_seconds: float,
        namespace: str = "",
        cluster: bool = False,
        partitions: int = 1,
    ) -> None:
        super().__init__()
        self._redis: RedisClient
        if cluster:
            self._redis = cluster_client(url)
            self.layout = RedisLayout(partitions=partitions, scope="0", namespace=namespace)
            self._publish = "SPUBLISH"
        else:
            self._redis = single_client(url)
            db = int(self._redis.connection_pool.connection_kwargs.get("db", 0))
            self.layout = RedisLayout(partitions=1, scope=str(db), namespace=namespace)
            self._publish = "PUBLISH"
        self._max_events = max_events
        self._max_age_ms = int(max_age_seconds * 1000)
        self._append = self._redis.register_script(redis_scripts.APPEND)
        self._position = self._redis.register_script(redis_scripts.POSITION)
        self._presence = self._redis.register_script(redis_scripts.PRESENCE)
        self._lease = self._redis.register_script(redis_scripts.LEASE)
        self._close_gate = self._redis.register_script(redis_scripts.CLOSE_GATE)
        self._gate = self._redis.register_script(redis_scripts.GATE)
        self._reopen_gate = self._redis.register_script(redis_scripts.REOPEN_GATE)
        self._process_id = uuid.uuid4().hex
        self._servers = ServerBook()
        self._reader = PubSubReader(self._subscribe, self._on_live_message, self._signal_gap)
        self._lease_task: asyncio.Task[None] | None = None
        self._live = True

    @property
    def client(self) -> RedisClient:
        """The process's Redis client (command pools), for other users of the same Redis."""
        return self._redis

    @property
    def generation(self) -> int:
        """Bumped each time a partition is found on another server than before."""
        return self._servers.generation

    async def start(self, *, live: bool = True) -> None:
        """Start reading live messages; waits briefly for the first subscription.

        Without `live`: no subscription, and no process lease (that counts sockets).
        """
        self._live = live
        with contextlib.suppress(*REDIS_ERRORS):
            if live:
                await self._renew_leases()
            await self._mark_epochs()
        if not live:
            return
        self._reader.start()
        await self._reader.wait_ready(STARTUP_WAIT_SECONDS)
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
        """Raise unless this process is subscribed and hears from Redis (or, when it does
        not deliver live, unless Redis answers)."""
        if not self._live:
            await self._redis.ping()
            return
        if not self._reader.healthy:
            raise BusUnavailable(self._reader.error or "live delivery is not running")

    # -- appending ------------------------------------------------------------------------

    async def append(self, events: Sequence[LogEvent], *, gated: bool) -> list[Appended]:
        """Append each row's event in every partition of its recipients (one round trip
        per server)."""
        calls: list[tuple[int, int]] = []  # (event index, partition) per script call
        scripts: list[ScriptCall] = []
        for index, event in enumerate(events):
            for partition, users in self.layout.by_partition(event.recipients).items():
                calls.append((index, partition))
                scripts.append(self._append_call(event, partition, users, gated=gated))
        replies = await run_scripts(self._redis, scripts)
        outcome: list[set[int]] = [set() for _ in events]
        moved: dict[int, str | None] = {}
        for (index, partition), reply in zip(calls, replies, strict=True):
            outcome[index].add(int(reply))
            if int(reply) == MOVED:
                moved[partition] = None
        self._note_moved(moved)
        results = []
        for event, codes in zip(events, outcome, strict=True):
            if codes & {DEFERRED, MOVED}:
                results.append(Appended.DEFERRED)
            elif 1 in codes:
                EVENTS_PUBLISHED.labels(event.event_type).inc(len(set(event.recipients)))
                results.append(Appended.LOGGED)
            else:
                results.append(Appended.DUPLICATE)
        return results

    def _append_call(
        self, event: LogEvent, partition: int, users: list[int], *, gated: bool
    ) -> ScriptCall:
        # Bytes already: redis-py would check and encode each of these on every call.
        return ScriptCall(
            self._append,
            keys=[
                (self.layout.marker_prefix(partition) + str(event.row_id)).encode(),
                self.layout.gate(partition).encode(),
                self.layout.deferred(partition).encode(),
                *(self.layout.stream_key(u) for u in users),
            ],
            args=[
                event.body.encode(),
                self._max_events,
                self._max_age_ms,
                self.layout.channel(partition).encode(),
                b"1" if gated else b"0",
                event.row_id,
                MARKER_TTL_MS,
                self._publish,
            ],
        )

    async def publish_ephemeral(
        self,
        user_ids: Iterable[int],
        event_type: str,
        data: Mapping[str, Any],
        *,
        internal: bool = False,
    ) -> None:
        """Publish without logging: one message per partition of the recipients."""
        body = encode_body(event_type, data)
        groups = self.layout.by_partition(dict.fromkeys(user_ids))
        if not groups:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for partition, users in groups.items():
                message = encode_ephemeral(users, body, internal=internal)
                pipe.execute_command(self._publish, self.layout.channel(partition), message)
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
            args=[after_id or ""],
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
        await run_scripts(
            self._redis,
            [
                ScriptCall(
                    self._close_gate,
                    keys=[self.layout.gate(p), self.layout.deferred(p)],
                    args=list(deferred_row_ids),
                )
                for p in range(self.layout.partitions)
            ],
        )

    async def reopen_gate(self) -> bool:
        """Open every partition's fast path unless one still has unappended deferred rows,
        or moved to another server since the relay looked (it republishes first)."""
        partitions = [
            p
            for p in range(self.layout.partitions)
            if self._servers.may_reopen(p) and p in self._servers.seen
        ]
        replies = await run_scripts(
            self._redis,
            [
                ScriptCall(
                    self._reopen_gate,
                    keys=[self.layout.gate(p), self.layout.deferred(p), self.layout.server(p)],
                    args=[self.layout.marker_prefix(p), GATE_LEASE_MS, self._servers.seen[p]],
                )
                for p in partitions
            ],
        )
        opened = len(partitions) == self.layout.partitions
        moved: dict[int, str | None] = {}
        for partition, (state, server) in zip(partitions, replies, strict=True):
            if int(state) == 1:
                self._servers.reopened(partition)
            else:
                opened = False
            if int(state) == MOVED:
                moved[partition] = str(server)
        self._note_moved(moved)
        return opened

    async def gate_is_open(self) -> bool:
        """Renew every open gate's lease; False when one of them is closed.

        Raises `ServerChanged` when a partition is found on another server than the relay
        last confirmed, until the relay has started republishing (`kept_its_data`).
        """
        replies = await run_scripts(
            self._redis,
            [
                ScriptCall(
                    self._gate,
                    keys=[self.layout.gate(p), self.layout.server(p)],
                    args=[GATE_LEASE_MS],
                )
                for p in range(self.layout.partitions)
            ],
        )
        moved: dict[int, str | None] = {}
        for partition, (state, server) in enumerate(replies):
            self._servers.seen[partition] = str(server)
            if int(state) in (MOVED, UNCONFIRMED):
                moved[partition] = str(server)
        self._note_moved(moved)
        # Only a partition that has data on another server may have lost recent writes
        # there: the relay republishes them before it relays anything newer.
        really_moved = {p for p, (state, _) in enumerate(replies) if int(state) == MOVED}
        if self._servers.must_republish(really_moved):
            raise ServerChanged(
                f"{len(really_moved)} partition(s) of the event log are on another Redis "
                "server: the relay republishes the recent events first"
            )
        return all(int(state) == 1 for state, _ in replies)

    def _note_moved(self, partitions: dict[int, str | None]) -> None:
        news = self._servers.moved(partitions)
        if news:
            log.warning(
                "partitions of the event log are on a new Redis server (restarted, failed "
                "over, or new): their fast path is closed until the relay has republished "
                "the recent events",
                partitions=len(news),
            )

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
        """False when Redis came back without any of its data (every epoch key is gone).

        The relay asks right before it republishes: the partitions found on another server
        so far are covered by that republication.
        """
        self._servers.republishing()
        async with self._redis.pipeline(transaction=False) as pipe:
            for partition in range(self.layout.partitions):
                pipe.exists(self.layout.epoch(partition))
            present = sum(int(r) for r in await pipe.execute())
        await self._mark_epochs()
        return present > 0

    async def _mark_epochs(self) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for partition in range(self.layout.partitions):
                pipe.set(self.layout.epoch(partition), "1", nx=True)
            await pipe.execute()

    async def _subscribe(self) -> Subscription:
        channels = self.layout.channels()
        if isinstance(self._redis, RedisCluster):
            return await subscribe_cluster(self._redis, channels)
        return await subscribe_single(self._redis, channels)

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
        await run_scripts(
            self._redis,
            [
                ScriptCall(
                    self._lease,
                    keys=[self.layout.processes(p)],
                    args=[self._process_id, PROCESS_LEASE_MS],
                )
                for p in range(self.layout.partitions)
            ],
        )

    async def _lease_forever(self) -> None:
        while True:
            await asyncio.sleep(PROCESS_LEASE_MS / 3000)
            with contextlib.suppress(*REDIS_ERRORS):
                await self._renew_leases()
