"""The services-mode store: TATs in Redis, updated by Lua scripts on Redis's own clock.

Every process shares the counters, and no process's clock matters: the scripts read
`TIME`. Each key expires when its TAT passes, so idle keys cost nothing.

One script call counts a request against all its keys at once, or against none. On a Redis
Cluster the keys of one request (a username's, an address's) live in different slots, which
no script may span: there each key is taken on its own, and when one of them refuses, the
ones that admitted the request get it back. A request thus still passes only if every key
admits it; a concurrent request may meanwhile see a key one request fuller than it ends up,
so the limiter errs on the side of refusing, never of letting through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster

from parley.ratelimit.core import Charge, Exhausted, Limiter
from parley.realtime.redis_clients import cluster_client, single_client

# A slow Redis must not hold logins forever: past this, the call fails (TimeoutError).
CALL_TIMEOUT_SECONDS = 2.0

# KEYS: one per charge. ARGV: per key, its interval and period in ms. Returns 0 when the
# request counts against every key, else the ms to wait (then nothing is written).
TAKE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local wait = 0
local tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  tats[i] = tat + interval
  wait = math.max(wait, tats[i] - tonumber(ARGV[2 * i]) - now)
end
if wait > 0 then return math.max(1, math.ceil(wait)) end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, string.format('%.3f', tats[i]), 'PX', math.ceil(tats[i] - now))
end
return 0
"""

# KEYS: one per charge. ARGV: per key, its interval in ms. Moves each TAT back one interval.
GIVE_BACK_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key))
  if tat then
    tat = tat - tonumber(ARGV[i])
    if tat > now then
      redis.call('SET', key, string.format('%.3f', tat), 'PX', math.ceil(tat - now))
    else
      redis.call('DEL', key)
    end
  end
end
return 0
"""


class RedisLimiter(Limiter):
    """GCRA state in Redis, through a client of its own (`from_url`) or one it is given."""

    def __init__(self, client: redis.Redis | RedisCluster, *, owned: bool = False) -> None:
        self._client = client
        self._owned = owned
        self._take_script = client.register_script(TAKE_SCRIPT)
        self._give_back_script = client.register_script(GIVE_BACK_SCRIPT)
        self._one_slot_per_script = isinstance(client, RedisCluster)

    @classmethod
    def from_url(cls, url: str, *, cluster: bool = False) -> RedisLimiter:
        """A limiter with a client (and pool) of its own, closed by `close`; with `cluster`,
        `url` names any node of a Redis Cluster."""
        client = cluster_client(url) if cluster else single_client(url)
        return cls(client, owned=True)

    async def start(self) -> None:
        """Connect a cluster client before concurrent use (it learns the slots once)."""
        if isinstance(self._client, RedisCluster):
            await self._client.initialize()

    async def close(self) -> None:
        """Close the client, if this limiter made it."""
        if self._owned:
            await self._client.aclose()

    async def _take(self, charges: Sequence[Charge]) -> None:
        async with asyncio.timeout(CALL_TIMEOUT_SECONDS):
            if self._one_slot_per_script:
                wait_ms = await self._take_each(charges)
            else:
                wait_ms = await self._take_all(charges)
        if wait_ms > 0:
            raise Exhausted(wait_ms / 1000)

    async def _give_back(self, charges: Sequence[Charge]) -> None:
        async with asyncio.timeout(CALL_TIMEOUT_SECONDS):
            if self._one_slot_per_script:
                await self._give_back_each(charges)
            else:
                await self._give_back_all(charges)

    async def _take_all(self, charges: Sequence[Charge]) -> int:
        """Count against every key or none (one script call): 0, or the ms to wait."""
        args: list[float] = []
        for c in charges:
            args += [c.rate.interval * 1000, c.rate.period * 1000]
        return int(await self._take_script(keys=[c.key for c in charges], args=args))

    async def _take_each(self, charges: Sequence[Charge]) -> int:
        """Count against each key on its own; if one refuses, give back to the others."""
        waits = await asyncio.gather(*(self._take_all([c]) for c in charges))
        if max(waits) > 0:
            await self._give_back_each([c for c, w in zip(charges, waits, strict=True) if w == 0])
        return max(waits)

    async def _give_back_all(self, charges: Sequence[Charge]) -> None:
        await self._give_back_script(
            keys=[c.key for c in charges], args=[c.rate.interval * 1000 for c in charges]
        )

    async def _give_back_each(self, charges: Sequence[Charge]) -> None:
        await asyncio.gather(*(self._give_back_all([c]) for c in charges))
