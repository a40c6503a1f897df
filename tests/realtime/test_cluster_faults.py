"""Faults of a Redis Cluster under a live two-process deployment: nothing is lost silently.

The scenario and its checks are test_faults' (`run_with_fault`): two `parley serve`
processes, now on the private 3-master cluster (with a private plain Redis as Celery's
broker), three groups of two users with a socket each and a sender per group; one fault
while messages flow; then every socket must know every message of its chats — from events,
or from the REST refetch that `resync.required` asks for — with no event twice, none out
of order, no committed send answered 5xx and no request 500.

The faults: a master killed (a replica takes over), a master paused past the cluster's
failure timeout, and a graceful failover. One more test makes a failover lose writes for
certain (the replica is cut off first) and checks that the relay puts them back in the log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from parley.db.migrate import upgrade_to_head
from parley.realtime.redis_layout import RedisLayout
from tests.fixtures.parley_cluster import (
    PARTITIONS,
    busiest_master,
    cluster_env,
    master_of_user,
    wait_until_master,
    wipe,
)
from tests.fixtures.services import PrivatePostgres, RedisCluster
from tests.realtime.conftest import make_user
from tests.realtime.faultkit import Deployment, health, wait_until
from tests.realtime.test_faults import RECOVERY_BOUND, Setup, pubsub_healthy, run_with_fault

pytestmark = [pytest.mark.services_only, pytest.mark.timeout(180)]


@dataclass
class ClusterSetup(Setup):
    """A deployment on the cluster; `redis` is the broker."""

    cluster: RedisCluster


@pytest.fixture
def setup_factory(
    private_postgres_db: str,
    private_redis: Any,
    private_postgres: PrivatePostgres,
    redis_cluster: RedisCluster,
    tmp_path: Path,
) -> Iterator[Callable[[], ClusterSetup]]:
    made: list[Deployment] = []
    upgrade_to_head(private_postgres_db)

    def make() -> ClusterSetup:
        wipe(redis_cluster)  # this database counts its ids from 1 again
        broker = private_redis()
        deployment = Deployment(private_postgres_db, redis_cluster.url, tmp_path / "servers")
        made.append(deployment)
        deployment.start(**cluster_env(redis_cluster, broker.url))
        return ClusterSetup(deployment, broker, private_postgres, redis_cluster)

    yield make
    for deployment in made:
        deployment.stop()


async def each_reports_pubsub_down(setup: ClusterSetup, timeout: float = 15) -> None:
    """Until every process's health has said pubsub is down (each for as long as it takes
    to subscribe to the new master: not necessarily at the same time)."""
    servers = setup.deployment.alive()
    seen_down: set[int] = set()

    async def all_seen() -> bool:
        for server in servers:
            report = await health(server)
            if report["status_code"] == 503 and report["checks"]["pubsub"] != "ok":
                seen_down.add(server.port)
        return len(seen_down) == len(servers)

    await wait_until(all_seen, timeout, "health to report pubsub down", poll=0.05)


async def failover_while_health_says_down(setup: ClusterSetup, fault: Callable[[], Any]) -> None:
    """Run `fault` (in a thread) while checking that every process reports pubsub down;
    live delivery must come back within the recovery bound of its end."""
    watching = asyncio.create_task(each_reports_pubsub_down(setup))
    await asyncio.to_thread(fault)
    await watching
    took = await wait_until(lambda: pubsub_healthy(setup), 15, "pubsub to recover")
    assert took < RECOVERY_BOUND, f"live delivery came back {took:.1f} s after the failover"


async def test_a_master_killed_under_load(setup_factory: Callable[[], ClusterSetup]) -> None:
    setup = setup_factory()

    async def fault(s: ClusterSetup) -> None:
        master = await asyncio.to_thread(busiest_master, s.cluster)
        await failover_while_health_says_down(s, lambda: s.cluster.failover(master))

    await run_with_fault(setup, fault)


async def test_a_master_paused_past_the_failure_timeout(
    setup_factory: Callable[[], ClusterSetup],
) -> None:
    setup = setup_factory()

    async def fault(s: ClusterSetup) -> None:
        old = s.cluster.masters[await asyncio.to_thread(busiest_master, s.cluster)]
        replica = s.cluster.replicas_of(old)[0]
        await asyncio.to_thread(old.server.pause)
        await asyncio.to_thread(wait_until_master, s.cluster, replica)
        await asyncio.to_thread(old.server.resume)  # it finds itself replaced, and follows
        await wait_until(lambda: pubsub_healthy(s), 15, "pubsub to recover")

    await run_with_fault(setup, fault)
    # Each process noticed (silence, or the old master giving up its channels), subscribed
    # to the new master and refilled every socket from the log; perhaps too soon for its
    # health to show it.
    for server in setup.deployment.servers:
        assert "live delivery interrupted" in server.log()
        assert "listeners refill from the log" in server.log()


async def test_a_graceful_failover_under_load_needs_no_resync(
    setup_factory: Callable[[], ClusterSetup],
) -> None:
    setup = setup_factory()

    async def fault(s: ClusterSetup) -> None:
        master = await asyncio.to_thread(busiest_master, s.cluster)
        await asyncio.to_thread(s.cluster.graceful_failover, master)
        await wait_until(lambda: pubsub_healthy(s), 15, "pubsub to recover")

    scenario = await run_with_fault(setup, fault)
    assert all(w.resyncs == 0 for w in scenario.watchers), "nothing was lost: no resync"


async def test_writes_a_failover_lost_are_put_back_in_the_log(
    setup_factory: Callable[[], ClusterSetup], open_socket: Any
) -> None:
    """A replica promoted without the newest writes of its master: the relay republishes the
    events it lacks, so a client that resumes from before them still gets every one."""
    setup = setup_factory()
    cluster = setup.cluster
    server_a, server_b = setup.deployment.servers
    alice = await make_user(server_a, "alice")
    bob = await make_user(server_a, "bob")
    chat_id = await alice.group(bob)
    master = cluster.masters[master_of_user(cluster, bob.id)]
    replica = cluster.replicas_of(master)[0]
    phone = await open_socket(server_b, bob)  # online throughout
    laptop = await open_socket(server_a, bob)  # offline while the writes are lost
    before = await alice.send(chat_id, "before")
    seen = await laptop.next_of("message.created")
    await laptop.close()
    assert (await phone.next_of("message.created"))["data"]["id"] == before["id"]

    # The replica has everything so far; then it is frozen and cut off from its master.
    with master.server.client() as c:
        c.set(RedisLayout(PARTITIONS).user_key(bob.id, "probe"), "1")  # in bob's slot
        assert c.execute_command("WAIT", 1, 5000) == 1
        replica.server.pause()
        assert c.execute_command("CLIENT", "KILL", "TYPE", "replica") == 1
    try:
        lost = [await alice.send(chat_id, f"lost {i}") for i in range(5)]
        live = [await phone.next_of("message.created") for _ in lost]
        assert [e["data"]["id"] for e in live] == [m["id"] for m in lost]
        await asyncio.to_thread(master.server.kill)
    finally:
        await asyncio.to_thread(replica.server.resume)
    started = time.monotonic()
    await asyncio.to_thread(wait_until_master, cluster, replica)
    await wait_until(lambda: pubsub_healthy(setup), 15, "pubsub to recover")

    back = await open_socket(server_a, bob, f"lastEventId={seen['id']}")
    replayed = [await back.next_of("message.created", "resync.required") for _ in lost]
    assert [e.get("data", {}).get("id") for e in replayed] == [m["id"] for m in lost]
    # They were lost, and appended again: under new ids.
    old_ids = {e["id"] for e in live}
    assert not old_ids & {e["id"] for e in replayed}
    # The phone's position was among the lost events: it is told to resync, not left behind.
    assert (await phone.next_of("resync.required", "message.created"))["type"] == (
        "resync.required"
    )
    print(f"the lost events were back {time.monotonic() - started:.1f} s after the kill")
