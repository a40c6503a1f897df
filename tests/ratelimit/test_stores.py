"""The GCRA stores: the same answers from process memory and from Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from parley.ratelimit.core import Charge, Exhausted, Limiter, Rate, charge
from parley.ratelimit.memory import SWEEP_EVERY, MemoryLimiter
from parley.ratelimit.redis_store import RedisLimiter
from tests.conftest import REDIS_URL


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services_only)])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[Limiter]:
    """Each store; Redis only in the services pass."""
    if request.param == "memory":
        yield MemoryLimiter()
        return
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    await client.flushdb()
    try:
        yield RedisLimiter(client)
    finally:
        await client.flushdb()
        await client.aclose()


async def spent_after(limiter: Limiter, charges: list[Charge], attempts: int) -> int:
    """How many of `attempts` takes pass before the first refusal."""
    for n in range(attempts):
        try:
            await limiter.take(charges)
        except Exhausted:
            return n
    return attempts


async def test_a_burst_of_limit_then_a_wait_of_one_interval(limiter: Limiter) -> None:
    key = charge("t", "a", Rate(5, 100))
    assert await spent_after(limiter, [key], 10) == 5
    with pytest.raises(Exhausted) as refused:
        await limiter.take([key])
    assert 19 < refused.value.retry_after <= 20  # 100 s / 5
    assert refused.value.retry_after_header == "20"


async def test_keys_and_scopes_are_separate(limiter: Limiter) -> None:
    rate = Rate(2, 100)
    assert await spent_after(limiter, [charge("t", "a", rate)], 5) == 2
    assert await spent_after(limiter, [charge("t", "b", rate)], 5) == 2
    assert await spent_after(limiter, [charge("u", "a", rate)], 5) == 2


async def test_a_refused_take_charges_no_key(limiter: Limiter) -> None:
    roomy, tight = charge("t", "roomy", Rate(10, 100)), charge("t", "tight", Rate(2, 100))
    assert await spent_after(limiter, [roomy, tight], 5) == 2
    # Three refusals above left `roomy` alone: 8 of its 10 are left.
    assert await spent_after(limiter, [roomy], 20) == 8


async def test_giving_back_undoes_a_take(limiter: Limiter) -> None:
    key = charge("t", "a", Rate(3, 100))
    for _ in range(10):
        await limiter.take([key])
        await limiter.give_back([key])
    assert await spent_after(limiter, [key], 5) == 3
    await limiter.give_back([charge("t", "never-taken", Rate(3, 100))])  # harmless


async def test_disabled_rates_are_not_counted(limiter: Limiter) -> None:
    off = charge("t", "a", Rate(0, 100))
    assert await spent_after(limiter, [off], 50) == 50


async def test_subjects_of_any_text_make_valid_keys(limiter: Limiter) -> None:
    rate = Rate(1, 100)
    for subject in ["al\x00ice", "\udcff", "ålice", "x" * 1000, ""]:
        assert await spent_after(limiter, [charge("t", subject, rate)], 3) == 1


async def test_memory_refills_one_per_interval_and_all_after_the_period() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    key = [charge("t", "a", Rate(4, 60))]
    assert await spent_after(limiter, key, 10) == 4
    clock.now += 14.9
    assert await spent_after(limiter, key, 10) == 0
    clock.now += 0.1
    assert await spent_after(limiter, key, 10) == 1
    clock.now += 60
    assert await spent_after(limiter, key, 10) == 4


async def test_memory_forgets_keys_whose_period_has_passed() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    rate = Rate(1, 10)
    for i in range(SWEEP_EVERY - 1):
        await limiter.take([charge("t", str(i), rate)])
    assert len(limiter) == SWEEP_EVERY - 1
    clock.now += 10
    await limiter.take([charge("t", "last", rate)])
    assert len(limiter) == 1


@pytest.mark.services_only
async def test_redis_keys_expire_with_their_period() -> None:
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        await client.flushdb()
        limiter = RedisLimiter(client)
        key = charge("t", "a", Rate(2, 30))
        await limiter.take([key])
        assert 0 < await client.pttl(key.key) <= 15_000
        await limiter.take([key])
        assert 15_000 < await client.pttl(key.key) <= 30_000
        await limiter.give_back([key])
        await limiter.give_back([key])
        assert await client.exists(key.key) == 0
    finally:
        await client.flushdb()
        await client.aclose()


async def test_memory_never_refuses_the_first_request_at_the_edge_of_the_burst() -> None:
    # At some clock readings (now + period) - period - now is a hair above 0 in floating
    # point; at these, a fresh key's single allowed request used to be refused.
    for step in range(1000):
        clock = FakeClock()
        clock.now = 1000.0 + step / 7
        limiter = MemoryLimiter(clock)
        assert await spent_after(limiter, [charge("t", "a", Rate(1, 100))], 3) == 1
