"""Picks the bus for the configured mode."""

from __future__ import annotations

from parley.realtime.bus import Bus
from parley.realtime.memory_bus import MemoryBus
from parley.settings import Settings


def create_bus(settings: Settings, namespace: str) -> Bus:
    """Redis when `PARLEY_REDIS_URL` is set, otherwise in-process memory.

    `namespace` (the deployment's instance id) prefixes every Redis key and channel.
    """
    if settings.redis_url:
        from parley.realtime.redis_bus import RedisBus

        return RedisBus(
            settings.redis_url,
            namespace=namespace,
            max_events=settings.event_log_max_events,
            max_age_seconds=settings.event_log_max_age_seconds,
            cluster=settings.redis_cluster,
            partitions=settings.redis_cluster_partitions,
        )
    return MemoryBus(
        max_events=settings.event_log_max_events,
        max_age_seconds=settings.event_log_max_age_seconds,
    )
