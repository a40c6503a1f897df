"""Per-address limits behind proxies, against real `parley serve` processes.

The client address is the rightmost X-Forwarded-For entry that is not a trusted proxy
(PARLEY_TRUSTED_PROXIES), and the header is read only from a trusted peer: a client cannot
pick its own address. Test clients connect from 127.0.0.2 (untrusted) or 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.servers import ServerProcess, server_env, start_server
from tests.fixtures.users import PASSWORD
from tests.ratelimit.conftest import assert_limited

LIMIT = 3
LIMITS = {
    "PARLEY_RATE_LIMIT_ENABLED": "true",
    "PARLEY_RATE_LIMIT_REGISTER_IP": str(LIMIT),
    "PARLEY_RATE_LIMIT_LOGIN_IP": str(LIMIT),
    "PARLEY_RATE_LIMIT_REFRESH_IP": str(LIMIT),
    "PARLEY_RATE_LIMIT_LOGIN_USERNAME": "0",
}


@pytest.fixture(scope="module")
def servers(
    database_url: str, redis_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServerProcess]]:
    """One server trusting the proxy on 127.0.0.1, one trusting no proxy at all."""
    workdir: Path = tmp_path_factory.mktemp("proxies")
    started = {
        name: start_server(
            server_env(database_url, redis_url, PARLEY_TRUSTED_PROXIES=trusted, **LIMITS), workdir
        )
        for name, trusted in [("loopback", "127.0.0.1"), ("none", "")]
    }
    yield started
    for server in started.values():
        server.stop()


def client_from(server: ServerProcess, local_address: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=local_address)
    return httpx.AsyncClient(base_url=server.http, transport=transport, timeout=15)


async def register(http: httpx.AsyncClient, name: str, forwarded_for: str) -> httpx.Response:
    return await http.post(
        "/api/v1/auth/register",
        json={"username": name, "password": PASSWORD},
        headers={"X-Forwarded-For": forwarded_for},
    )


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(
    servers: dict[str, ServerProcess],
) -> None:
    """The issue's probe: each registration claims another address; all count as one."""
    async with client_from(servers["loopback"], "127.0.0.2") as http:
        for i in range(LIMIT):
            assert (await register(http, f"user{i}", f"192.0.2.{i}")).status_code == 201
        assert_limited(await register(http, "user9", "192.0.2.9"))
        # Every per-address limit: logins and refreshes alike.
        for i in range(LIMIT):
            resp = await http.post(
                "/api/v1/auth/token",
                data={"username": "user0", "password": PASSWORD},
                headers={"X-Forwarded-For": f"198.51.100.{i}"},
            )
            assert resp.status_code == 200
        refresh_token = resp.json()["refresh_token"]
        assert_limited(
            await http.post(
                "/api/v1/auth/token",
                data={"username": "user0", "password": PASSWORD},
                headers={"X-Forwarded-For": "198.51.100.9"},
            )
        )
        for i in range(LIMIT):
            resp = await http.post(
                "/api/v1/auth/refresh",
                json={"refreshToken": refresh_token},
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            )
            assert resp.status_code == 200, resp.text
            refresh_token = resp.json()["refresh_token"]
        assert_limited(
            await http.post(
                "/api/v1/auth/refresh",
                json={"refreshToken": refresh_token},
                headers={"X-Forwarded-For": "203.0.113.9"},
            )
        )


async def test_behind_a_trusted_proxy_the_rightmost_untrusted_address_counts(
    servers: dict[str, ServerProcess],
) -> None:
    async with client_from(servers["loopback"], "127.0.0.1") as proxy:
        # What nginx's $proxy_add_x_forwarded_for sends: the client's own claim, then the
        # address nginx saw.
        for i in range(LIMIT):
            resp = await register(proxy, f"proxied{i}", f"192.0.2.{i}, 198.51.100.1")
            assert resp.status_code == 201, resp.text
        assert_limited(await register(proxy, "proxied9", "192.0.2.9, 198.51.100.1"))
        # Through a second trusted proxy, the same client is still the same client.
        assert_limited(await register(proxy, "proxied9", "192.0.2.9, 198.51.100.1, 127.0.0.1"))
        # Another client behind the proxy has its own budget.
        assert (await register(proxy, "other1", "198.51.100.1, 198.51.100.2")).status_code == 201


async def test_with_no_trusted_proxy_no_header_is_believed(
    servers: dict[str, ServerProcess],
) -> None:
    async with client_from(servers["none"], "127.0.0.3") as http:
        for i in range(LIMIT):
            assert (await register(http, f"direct{i}", f"192.0.2.{i}")).status_code == 201
        assert_limited(await register(http, "direct9", "192.0.2.9, 198.51.100.7"))
