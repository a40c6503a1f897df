"""The services-mode store: TATs in Redis, updated by Lua scripts on Redis's own clock.

Every process shares the counters, and no process's clock matters: the scripts read
`TIME`. Each key expires when its TAT passes, so idle keys cost nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import redis.asyncio as redis

from parley.ratelimit.core import Charge, Exhausted, Limiter

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

    def __init__(self, client: redis.Redis, *, owned: bool = False) -> None:
        self._client = client
        self._owned = owned
        self._take_script = client.register_script(TAKE_SCRIPT)
        self._give_back_script = client.register_script(GIVE_BACK_SCRIPT)

    @classmethod
    def from_url(cls, url: str) -> RedisLimiter:
        """A limiter with a client (and pool) of its own, closed by `close`."""
        client = redis.from_url(url, socket_timeout=CALL_TIMEOUT_SECONDS)
        return cls(client, owned=True)

    async def close(self) -> None:
        """Close the client, if this limiter made it."""
        if self._owned:
            await self._client.aclose()

    async def _take(self, charges: Sequence[Charge]) -> None:
        args: list[float] = []
        for c in charges:
            args += [c.rate.interval * 1000, c.rate.period * 1000]
        async with asyncio.timeout(CALL_TIMEOUT_SECONDS):
            wait_ms = await self._take_script(keys=[c.key for c in charges], args=args)
        if int(wait_ms) > 0:
            raise Exhausted(int(wait_ms) / 1000)

    async def _give_back(self, charges: Sequence[Charge]) -> None:
        async with asyncio.timeout(CALL_TIMEOUT_SECONDS):
            await self._give_back_script(
                keys=[c.key for c in charges], args=[c.rate.interval * 1000 for c in charges]
            )
