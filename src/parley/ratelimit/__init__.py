"""Rate limits: GCRA counters in Redis (services mode) or in process memory (embedded).

`core` holds the algorithm's vocabulary, `memory` and `redis_store` the two stores, `auth`
the limits of the login, registration and refresh routes.
"""

from parley.ratelimit.core import Charge, Limiter, Rate
from parley.ratelimit.memory import MemoryLimiter
from parley.ratelimit.redis_store import RedisLimiter
from parley.settings import Settings


def open_limiter(settings: Settings) -> Limiter:
    """The process's limiter: in Redis in services mode (shared by every process), else in
    memory. The app's lifespan opens it and closes it."""
    if settings.redis_url:
        return RedisLimiter.from_url(settings.redis_url, cluster=settings.redis_cluster)
    return MemoryLimiter()


__all__ = ["Charge", "Limiter", "Rate", "open_limiter"]
