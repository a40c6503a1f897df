"""Services mode: every process counts in the same Redis."""

from __future__ import annotations

import pytest

from tests.ratelimit.conftest import (
    AppWith,
    ClientFactory,
    assert_limited,
    create_user,
    log_in,
)

pytestmark = pytest.mark.services_only


async def test_two_processes_share_the_login_counters(
    make_app: AppWith, make_client: ClientFactory
) -> None:
    limits = {"rate_limit_login_username": 4, "rate_limit_login_ip": 6}
    app_a, app_b = await make_app(**limits), await make_app(**limits)
    a, b = await make_client(app_a, "192.0.2.7"), await make_client(app_b, "192.0.2.7")
    await create_user(a, "alice")
    for client in (a, b, a, b):
        assert (await log_in(client, "alice", "wrong password!")).status_code == 401
    assert_limited(await log_in(a, "alice", "wrong password!"))
    assert_limited(await log_in(b, "alice", "wrong password!"))
    # The address counter is shared too: 4 attempts above (limited ones do not count), 2 left.
    assert (await log_in(b, "bob", "wrong password!")).status_code == 401
    assert (await log_in(a, "carol", "wrong password!")).status_code == 401
    assert_limited(await log_in(b, "dave", "wrong password!"))
