"""A user's event log keeps what is among its newest `max_events` or younger than `max_age`.

Checked on the Redis bus itself (a real Redis): entries are written with old stream ids to
stand for events of long ago, then the bus appends new ones and trims.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from parley.realtime.bus import LogEvent, ReplayUnavailable
from parley.realtime.codec import encode_body
from parley.realtime.redis_bus import RedisBus
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.services_only

MAX_EVENTS = 40
USER = 7


@pytest.fixture
async def raw() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


async def _bus(max_age_seconds: float) -> RedisBus:
    bus = RedisBus(
        REDIS_URL, namespace="trimtest", max_events=MAX_EVENTS, max_age_seconds=max_age_seconds
    )
    await bus.start()
    return bus


async def _append(bus: RedisBus, count: int, first_row: int) -> None:
    for n in range(count):
        body = encode_body("chat.updated", {"n": n})
        event = LogEvent(first_row + n, [USER], body, "chat.updated")
        await bus.append([event], gated=False)


async def _ancient(raw: aioredis.Redis, bus: RedisBus, count: int) -> list[str]:
    """`count` entries from 1970 in the user's log, as if appended long ago."""
    key = bus.layout.stream(USER)
    return [await raw.xadd(key, {"b": "{}"}, id=f"1000-{n + 1}") for n in range(count)]


async def test_young_events_are_kept_past_max_events(raw: aioredis.Redis) -> None:
    bus = await _bus(max_age_seconds=3600)
    try:
        await _append(bus, MAX_EVENTS * 5, first_row=1)
        entries = await raw.xrange(bus.layout.stream(USER))
        assert len(entries) == MAX_EVENTS * 5
        replay = await bus.position(USER, entries[0][0])  # the first is still a position
        assert len(replay.frames) == MAX_EVENTS * 5 - 1
    finally:
        await bus.close()


async def test_old_events_go_but_the_newest_max_events_stay(raw: aioredis.Redis) -> None:
    bus = await _bus(max_age_seconds=3600)
    try:
        ancient = await _ancient(raw, bus, 100)
        await _append(bus, 60, first_row=1)  # 60 young ones: all kept, past MAX_EVENTS
        entries = await raw.xrange(bus.layout.stream(USER))
        young = [entry_id for entry_id, _ in entries if not entry_id.startswith("1000-")]
        assert len(young) == 60
        kept_ancient = [entry_id for entry_id, _ in entries if entry_id.startswith("1000-")]
        assert len(kept_ancient) < 100, "old entries beyond max_events were trimmed"
        newest_dropped = ancient[len(ancient) - len(kept_ancient) - 1]

        # The newest dropped id is still a position; anything older asks for a resync.
        replay = await bus.position(USER, newest_dropped)
        assert [f.event_id for f in replay.frames] == [e for e, _ in entries]
        with pytest.raises(ReplayUnavailable):
            await bus.position(USER, ancient[0])
    finally:
        await bus.close()


async def test_without_an_age_allowance_the_log_holds_about_max_events(
    raw: aioredis.Redis,
) -> None:
    bus = await _bus(max_age_seconds=0)
    try:
        await _append(bus, MAX_EVENTS * 4, first_row=1)
        length = await raw.xlen(bus.layout.stream(USER))
        assert MAX_EVENTS <= length <= MAX_EVENTS + 16 + 32
    finally:
        await bus.close()


async def test_a_log_that_falls_silent_is_kept(raw: aioredis.Redis) -> None:
    """The contract keeps at least a user's last 1,000 events, with no time limit: a user
    who comes back after days resumes from the log, without a resync. So no key of a log
    (its entries, its newest trimmed id, the position given while it was empty) expires."""
    bus = await _bus(max_age_seconds=0)
    quiet = USER + 1
    try:
        assert (await bus.position(quiet, None)).last_event_id == "0-0"  # an empty log's
        await _append(bus, MAX_EVENTS * 4, first_row=1)  # trims USER's log
        keys = [bus.layout.stream(USER), bus.layout.dropped(USER), bus.layout.base(quiet)]
        assert [await raw.exists(key) for key in keys] == [1, 1, 1]
        assert [await raw.pttl(key) for key in keys] == [-1, -1, -1]
    finally:
        await bus.close()


async def test_a_log_written_when_logs_expired_loses_its_expiry(raw: aioredis.Redis) -> None:
    """Logs of the version before carry a two-hour expiry: trimming one, or starting a socket
    on it, makes it permanent, its stream with its newest trimmed id (never the id alone: a
    trimmed id must not vouch for a log that expired and was begun anew)."""
    bus = await _bus(max_age_seconds=0)
    trimmed, opened = USER, USER + 1
    try:
        await _append(bus, 1, first_row=1)
        stream = bus.layout.stream(trimmed)
        await raw.pexpire(stream, 7_200_000)  # as the version before left it
        await _append(bus, MAX_EVENTS * 4, first_row=2)  # XADD keeps an expiry; trimming not
        assert await raw.exists(bus.layout.dropped(trimmed))
        assert [await raw.pttl(stream), await raw.pttl(bus.layout.dropped(trimmed))] == [-1, -1]

        other = bus.layout.stream(opened)
        await raw.xadd(other, {"b": "{}"})
        await raw.pexpire(other, 7_200_000)
        await bus.position(opened, None)
        assert await raw.pttl(other) == -1
    finally:
        await bus.close()
