"""Rate limits: GCRA counters in Redis (services mode) or in process memory (embedded).

`core` holds the algorithm's vocabulary, `memory` and `redis_store` the two stores, `auth`
the limits of the login, registration and refresh routes.
"""

from parley.ratelimit.core import Charge, Limiter, Rate

__all__ = ["Charge", "Limiter", "Rate"]
