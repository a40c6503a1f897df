"""The rate-limit tests again, with the counters in a Redis Cluster.

A request's keys (a username's, an address's) fall in different slots there, which no
script may span: the store takes them one by one and gives back when one refuses. The
store tests of test_stores and the tests of the limited routes (login, OTP, registration,
refresh, two processes sharing counters) are collected here a second time and run
unchanged, with `limiter` and `make_app` replaced by ones on the private cluster.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis.crc import key_slot

from parley.ratelimit.core import Limiter, Rate, charge
from parley.ratelimit.redis_store import RedisLimiter
from tests.conftest import REDIS_URL
from tests.fixtures.apps import make_settings, running_app
from tests.fixtures.parley_cluster import wipe
from tests.fixtures.services import RedisCluster
from tests.ratelimit.conftest import OFF, AppWith
from tests.ratelimit.test_login import (  # noqa: F401 - collected again, on the cluster
    test_a_limited_unknown_user_looks_like_a_limited_real_one,
    test_concurrent_guesses_cannot_pass_the_limit,
    test_every_login_attempt_counts_against_the_address,
    test_failed_logins_per_username_are_limited,
    test_otp_required_is_no_failed_attempt_but_a_wrong_code_is,
    test_successful_logins_do_not_count_against_the_username,
    test_the_limit_lifts_after_the_window,
    test_the_username_limit_holds_across_addresses_and_login_routes,
)
from tests.ratelimit.test_otp import (  # noqa: F401 - collected again, on the cluster
    test_right_codes_and_missing_codes_do_not_count,
    test_wrong_codes_at_login_are_limited_per_user_from_any_address,
    test_wrong_codes_on_enable_and_disable_are_limited_per_user,
)
from tests.ratelimit.test_register_refresh import (  # noqa: F401 - collected again
    test_refreshes_per_address_are_limited,
    test_registrations_per_address_are_limited,
)
from tests.ratelimit.test_shared import (  # noqa: F401 - collected again, on the cluster
    test_two_processes_share_the_login_counters,
)
from tests.ratelimit.test_stores import (  # noqa: F401 - collected again, on the cluster
    spent_after,
    test_a_burst_of_limit_then_a_wait_of_one_interval,
    test_a_refused_take_charges_no_key,
    test_disabled_rates_are_not_counted,
    test_giving_back_undoes_a_take,
    test_keys_and_scopes_are_separate,
    test_subjects_of_any_text_make_valid_keys,
)

pytestmark = pytest.mark.services_only


@pytest.fixture
async def limiter(redis_cluster: RedisCluster) -> AsyncIterator[Limiter]:
    """The Redis store on a client of the cluster, with every key gone."""
    client = ClusterClient.from_url(redis_cluster.url, decode_responses=True)
    await client.flushall()
    try:
        yield RedisLimiter(client)
    finally:
        await client.aclose()


@pytest.fixture
def make_app(database_url: str, redis_cluster: RedisCluster, exit_stack: AsyncExitStack) -> AppWith:
    """Apps on the cluster (and the plain test Redis as broker), with fresh counters."""
    wipe(redis_cluster)

    async def make(**overrides: Any) -> Any:
        settings = make_settings(
            database_url,
            redis_cluster.url,
            redis_cluster=True,
            broker_url=REDIS_URL,
            **{**OFF, **overrides},
        )
        return await exit_stack.enter_async_context(running_app(settings))

    return make


async def test_keys_in_different_slots_count_all_or_nothing(limiter: Limiter) -> None:
    user = charge("login:user", "alice", Rate(10, 100))
    address = charge("login:ip", "192.0.2.1", Rate(2, 100))
    assert key_slot(user.key.encode()) != key_slot(address.key.encode())

    assert await spent_after(limiter, [user, address], 5) == 2
    # The three refusals gave the user's key its count back: 8 of its 10 are left.
    assert await spent_after(limiter, [user], 20) == 8
