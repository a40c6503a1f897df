"""The live-event tests again, on three `parley serve` processes over a Redis Cluster.

The tests of test_delivery, test_resume and test_ephemeral are collected here a second time
and run unchanged, with `servers` replaced: three processes on the private 3-master
cluster (Celery's broker is the plain test Redis), so that `server_a` is the first of them
and `server_b` the third. One more test spreads a group over every master.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.conftest import REDIS_URL, migrated_database, truncate_all
from tests.fixtures.parley_cluster import cluster_env, master_of_user
from tests.fixtures.servers import ServerProcess, server_env, start_server
from tests.fixtures.services import RedisCluster
from tests.realtime.conftest import Api, make_user
from tests.realtime.test_delivery import (  # noqa: F401 - collected again, on the cluster
    test_bearer_header_authenticates,
    test_chat_and_member_events,
    test_event_ids_increase_per_user,
    test_every_device_of_a_user_gets_the_event,
    test_message_posted_on_one_process_reaches_members_on_another,
    test_non_members_and_removed_members_receive_nothing,
    test_unauthenticated_sockets_are_closed_with_4401,
)
from tests.realtime.test_ephemeral import (  # noqa: F401 - collected again, on the cluster
    test_ping_pong_and_bad_frames,
    test_presence_online_on_first_socket_offline_after_last,
    test_typing_goes_to_the_other_members_only,
    test_typing_in_a_chat_you_are_not_in_is_refused,
)
from tests.realtime.test_resume import (  # noqa: F401 - collected again, on the cluster
    test_a_malformed_last_event_id_asks_for_a_resync,
    test_a_socket_that_saw_no_event_resumes_from_its_ready_position,
    test_an_id_older_than_the_log_asks_for_a_resync,
    test_ready_carries_the_newest_event_id,
    test_reconnect_with_last_event_id_replays_what_was_missed,
    test_resume_while_messages_keep_arriving_has_no_gap_and_no_duplicate,
)

pytestmark = pytest.mark.services_only


@pytest.fixture(scope="module")
def cluster_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of the cluster deployment's own. One database is one deployment: its
    outbox relay leads from one process, which publishes to that process's Redis; sharing
    the suite's database, the relay could lead from the suite's app, on another Redis."""
    with migrated_database(tmp_path_factory) as url:
        yield url


@pytest.fixture(autouse=True)
async def _empty_cluster_tables(cluster_database_url: str) -> AsyncIterator[None]:
    """Every test starts with empty tables, as on the suite's database."""
    yield
    await truncate_all(cluster_database_url)


@pytest.fixture(scope="module")
def servers(
    cluster_database_url: str,
    redis_cluster: RedisCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[ServerProcess]]:
    """Three server processes on the Redis Cluster."""
    workdir = tmp_path_factory.mktemp("cluster-servers")
    env = server_env(cluster_database_url, None, **cluster_env(redis_cluster, REDIS_URL))
    started: list[ServerProcess] = []
    try:
        for _ in range(3):
            started.append(start_server(env, workdir))
        yield started
    finally:
        for server in started:
            server.stop()


async def test_a_group_spread_over_every_master_reaches_every_process(
    servers: list[ServerProcess], redis_cluster: RedisCluster, open_socket: Any
) -> None:
    members: list[Api] = []
    while len({master_of_user(redis_cluster, m.id) for m in members}) < 3:
        members.append(await make_user(servers[0], f"member{len(members)}"))
    chat_id = await members[0].group(*members[1:])
    sockets = [await open_socket(servers[i % 3], m) for i, m in enumerate(members)]

    sent = await members[-1].send(chat_id, "to every master and every process")

    for sock in sockets:
        assert (await sock.next_of("message.created"))["data"]["id"] == sent["id"]


async def test_sockets_share_the_process_s_connections_to_each_node(
    servers: list[ServerProcess], redis_cluster: RedisCluster, open_socket: Any
) -> None:
    """Live delivery takes one connection per process per node, never one per socket: 24
    more sockets (and a message to all of them) open no new connection to the cluster."""
    server = servers[0]
    node_ports = {node.port for node in redis_cluster.servers}
    users = [await make_user(server, f"many{n}") for n in range(25)]
    sockets = [await open_socket(server, users[0])]
    before = _established(server.process.pid, node_ports)
    sockets += [await open_socket(server, user) for user in users[1:]]
    chat_id = await users[0].group(*users[1:])
    for sock in sockets:
        assert (await sock.next_of("chat.created"))["data"]["id"] == chat_id
    after = _established(server.process.pid, node_ports)
    assert before >= len(redis_cluster.masters)  # it does hold its connections to the nodes
    # A command's connection may be added under concurrency; a socket's never is.
    assert after <= before + 2, (before, after)


def _established(pid: int, remote_ports: set[int]) -> int:
    """The TCP connections of process `pid` established to one of `remote_ports`."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)  # the header
            for line in lines:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if fields[3] == "01" and fields[9] in inodes and remote_port in remote_ports:
                    count += 1  # state 01: ESTABLISHED
    return count
