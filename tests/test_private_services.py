"""The private services that fault-injection tests use do what they promise: Redis keeps an
AOF across a restart and loses everything without one, a paused server answers once resumed,
PostgreSQL drops its clients on a fast restart and recovers from a kill, and a Redis Cluster
keeps a replicated key through a master failover.

They do not depend on the suite's mode, so they run once, in the services pass.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.cluster import RedisCluster as ClusterClient
from redis.crc import key_slot

from tests.fixtures.plugin import PrivateRedisFactory
from tests.fixtures.ports import free_port
from tests.fixtures.services import ClusterNode, PrivatePostgres, RedisCluster

pytestmark = pytest.mark.services_only


def test_an_appendonly_redis_keeps_its_data_across_a_sigterm_restart(
    private_redis: PrivateRedisFactory,
) -> None:
    server = private_redis(appendonly=True)
    port = server.port
    with server.client() as c:
        c.set("kept", "yes")

    server.restart(signal.SIGTERM)

    assert server.port == port
    with server.client() as c:
        assert c.get("kept") == b"yes"


def test_an_appendonly_redis_keeps_acknowledged_writes_across_a_sigkill(
    private_redis: PrivateRedisFactory,
) -> None:
    # appendfsync everysec writes the AOF before replying: a killed process loses nothing
    # (only a crash of the machine could lose the last second).
    server = private_redis(appendonly=True)
    with server.client() as c:
        c.set("kept", "yes")

    server.restart(signal.SIGKILL)

    with server.client() as c:
        assert c.get("kept") == b"yes"


def test_a_redis_without_aof_comes_back_empty(private_redis: PrivateRedisFactory) -> None:
    server = private_redis()
    with server.client() as c:
        c.set("lost", "yes")

    server.restart()

    with server.client() as c:
        assert c.get("lost") is None
        assert c.dbsize() == 0


async def test_a_paused_redis_answers_only_after_resume(
    private_redis: PrivateRedisFactory,
) -> None:
    server = private_redis()
    client = aioredis.from_url(server.url)
    try:
        await client.set("k", "v")
        server.pause()
        pending = asyncio.ensure_future(client.get("k"))
        done, _ = await asyncio.wait({pending}, timeout=0.5)
        assert not done, "a paused server answered"

        server.resume()
        assert await asyncio.wait_for(pending, 5) == b"v"
    finally:
        server.resume()
        await client.aclose()


def test_a_closed_redis_leaves_no_process(private_redis: PrivateRedisFactory) -> None:
    server = private_redis()
    pid = server.pid
    assert pid is not None
    server.close()

    assert not server.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1)


async def test_postgres_fast_restart_drops_connections_and_takes_new_ones(
    private_postgres: PrivatePostgres, private_postgres_db: str
) -> None:
    dsn = private_postgres_db.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT 1") == 1

        private_postgres.restart(mode="fast")

        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await conn.fetchval("SELECT 1")
    finally:
        await conn.close(timeout=1)
    fresh = await asyncpg.connect(dsn)
    try:
        assert await fresh.fetchval("SELECT 2") == 2
    finally:
        await fresh.close()


async def test_postgres_comes_back_after_a_kill_with_committed_data(
    private_postgres: PrivatePostgres, private_postgres_db: str
) -> None:
    dsn = private_postgres_db.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE t (v int); INSERT INTO t VALUES (42)")
    await conn.close()

    private_postgres.kill()
    assert not private_postgres.running
    private_postgres.start()

    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT v FROM t") == 42
    finally:
        await conn.close()


def _key_served_by(master: ClusterNode) -> str:
    """A key whose slot `master` serves."""
    first, last = master.slots[0]
    return next(
        key
        for key in (f"key-{i}" for i in range(100_000))
        if first <= key_slot(key.encode()) <= last
    )


def test_a_cluster_failover_keeps_a_replicated_key(redis_cluster: RedisCluster) -> None:
    assert len(redis_cluster.masters) == 3
    old = redis_cluster.masters[0]
    key = _key_served_by(old)
    with old.server.client() as c:
        c.set(key, "survives")
        assert c.execute_command("WAIT", 1, 5000) == 1  # the replica has it

    new = redis_cluster.failover(0)

    assert new.node_id != old.node_id
    assert not old.server.running
    assert redis_cluster.masters[0].node_id == new.node_id
    client = ClusterClient.from_url(redis_cluster.url)
    try:
        assert client.get(key) == b"survives"
        for i in range(50):  # keys on every master
            client.set(f"after-{i}", i)
        assert client.get("after-49") == b"49"
    finally:
        client.close()


def test_a_graceful_cluster_failover_swaps_master_and_replica(
    redis_cluster: RedisCluster,
) -> None:
    # Whatever an earlier test killed, the fixture has brought back (as a replica).
    assert all(s.running for s in redis_cluster.servers)
    old = redis_cluster.masters[1]
    key = _key_served_by(old)
    with old.server.client() as c:
        c.set(key, "moved")

    new = redis_cluster.graceful_failover(1)

    assert old.server.running
    demoted = next(n for n in redis_cluster.nodes if n.node_id == old.node_id)
    assert demoted.role == "replica"
    assert demoted.master_id == new.node_id
    with new.server.client() as c:
        assert c.get(key) == b"moved"


def test_free_ports_are_never_handed_out_twice() -> None:
    # A port is bound only when its service starts: two calls before then must not get the
    # same one, nor a port that is another's cluster bus port (port + 10000).
    ports = [free_port(plus=10_000) for _ in range(300)] + [free_port() for _ in range(300)]
    taken = ports + [port + 10_000 for port in ports[:300]]
    assert len(set(taken)) == len(taken)
