"""The bus's Redis clients: one server, or a Redis Cluster; and their live subscriptions.

On one server a process subscribes to every live channel on one connection (`SUBSCRIBE`).
On a cluster the channels are sharded (`SSUBSCRIBE`/`SPUBLISH`, Redis 7): each lives on the
master that serves its slot, so a process holds one connection per master — redis-py's
cluster pub/sub keeps one per node — each reading the channels that master serves.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from functools import partial
from typing import Any

import redis.asyncio as redis
from redis.asyncio.cluster import ClusterNode, ClusterPubSub, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff

from parley.realtime.redis_reader import Feed, Subscription

COMMAND_TIMEOUT_SECONDS = 2.0


def single_client(url: str) -> redis.Redis:
    """A client of one Redis server (a pool of connections)."""
    return redis.from_url(
        url,
        decode_responses=True,
        health_check_interval=10,
        socket_timeout=COMMAND_TIMEOUT_SECONDS,
        socket_connect_timeout=COMMAND_TIMEOUT_SECONDS,
        # One retry covers a pooled connection that died with a restarted server; more
        # would only make a caller wait longer during an outage.
        retry=Retry(NoBackoff(), 1),
    )


def cluster_client(url: str) -> RedisCluster:
    """A client of the Redis Cluster that `url`'s node belongs to (a pool per node)."""
    return RedisCluster.from_url(
        url,
        decode_responses=True,
        health_check_interval=10,
        socket_timeout=COMMAND_TIMEOUT_SECONDS,
        socket_connect_timeout=COMMAND_TIMEOUT_SECONDS,
        # A retry reads the cluster's slots again: it follows a failover once the replica
        # is promoted; until then a caller gets the error soon (and the outbox holds on).
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.1), 2),
    )


async def subscribe_single(client: redis.Redis, channels: Sequence[str]) -> Subscription:
    """One connection, subscribed to every channel."""
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(*channels)
    except BaseException:
        await asyncio.shield(_close(pubsub))
        raise
    feed = Feed(
        channels,
        read=partial(_next_message, pubsub),
        ping=pubsub.ping,
        confirm_type="subscribe",
    )
    return Subscription([feed], partial(_close, pubsub))


async def subscribe_cluster(cluster: RedisCluster, channels: Sequence[str]) -> Subscription:
    """One connection per master, each subscribed to the channels of its slots.

    The cluster's slots are read afresh first: after a failover the promoted replica, not
    the old master, serves them.
    """
    await cluster.nodes_manager.initialize()
    pubsub = cluster.pubsub()
    try:
        await pubsub.ssubscribe(*channels)
        by_node: dict[str, list[str]] = defaultdict(list)
        for channel in channels:
            owner = cluster.get_node_from_key(channel)
            if owner is None:
                raise ConnectionError(f"no master serves {channel} now")
            by_node[owner.name].append(channel)
        feeds = []
        for name, node_channels in by_node.items():
            node = cluster.get_node(node_name=name)
            node_pubsub = pubsub.node_pubsub_mapping.get(name)
            if node is None or node_pubsub is None:
                raise ConnectionError(f"the cluster changed while subscribing ({name})")
            feeds.append(
                Feed(
                    node_channels,
                    read=partial(_next_sharded_message, pubsub, node),
                    ping=node_pubsub.ping,
                    confirm_type="ssubscribe",
                )
            )
    except BaseException:
        await asyncio.shield(_close(pubsub))
        raise
    return Subscription(feeds, partial(_close, pubsub))


async def _close(pubsub: Any) -> None:
    await pubsub.aclose()


async def _next_message(pubsub: Any, timeout: float) -> dict[str, Any] | None:
    message: dict[str, Any] | None = await pubsub.get_message(timeout=timeout)
    return message


async def _next_sharded_message(
    pubsub: ClusterPubSub, node: ClusterNode, timeout: float
) -> dict[str, Any] | None:
    message: dict[str, Any] | None = await pubsub.get_sharded_message(
        target_node=node, timeout=timeout
    )
    return message
