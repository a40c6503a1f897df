"""What the app's lifespan opens and closes, typed, and handed to routes as a dependency."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from parley.db.engine import Database
from parley.outbox.runtime import Outbox
from parley.ratelimit import Limiter
from parley.realtime.bus import Bus
from parley.realtime.hub import Hub
from parley.settings import Settings
from parley.worker import JobsRuntime

HealthCheck = Callable[[], Awaitable[None]]


@dataclass
class Resources:
    """Lifespan resources shared by every request of one process."""

    settings: Settings
    db: Database
    bus: Bus
    hub: Hub
    jobs: JobsRuntime
    outbox: Outbox
    limiter: Limiter

    def health_checks(self) -> dict[str, HealthCheck]:
        """The readiness checks, by name: one round trip to each dependency."""
        return {
            "database": self.db.ping,
            "pubsub": self.bus.check,
            "broker": self.jobs.check_broker,
        }
