"""The embedded-mode store: TATs in a dict of this process, on the monotonic clock.

Embedded mode is one process; with several workers each would count on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from parley.ratelimit.core import Charge, Limiter, gcra_take

# Expired keys are swept after this many writes, so that the dict stays as small as the
# set of keys seen within their periods (random usernames cannot grow it forever).
SWEEP_EVERY = 1024


class MemoryLimiter(Limiter):
    """GCRA state in process memory. No awaits inside: each call is atomic in the loop."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tats: dict[str, float] = {}
        self._writes = 0

    async def _take(self, charges: Sequence[Charge]) -> None:
        now = self._clock()
        tats = [self._tats.get(c.key) for c in charges]
        new_tats = gcra_take(tats, [c.rate for c in charges], now)
        for c, tat in zip(charges, new_tats, strict=True):
            self._tats[c.key] = tat
        self._writes += 1
        if self._writes % SWEEP_EVERY == 0:
            self._sweep(now)

    async def _give_back(self, charges: Sequence[Charge]) -> None:
        now = self._clock()
        for c in charges:
            tat = self._tats.get(c.key)
            if tat is None:
                continue
            if tat - c.rate.interval > now:
                self._tats[c.key] = tat - c.rate.interval
            else:
                del self._tats[c.key]

    def _sweep(self, now: float) -> None:
        for key in [k for k, tat in self._tats.items() if tat <= now]:
            del self._tats[key]

    def __len__(self) -> int:
        return len(self._tats)
