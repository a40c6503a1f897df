"""The limiter interface and the GCRA arithmetic both stores share.

GCRA (the generic cell rate algorithm) keeps one number per key: the theoretical arrival
time (TAT) of the next request. A rate of `limit` per `period` lets `limit` requests through
at once, then one every `period / limit`; after `period` of silence the full burst is back.
Unlike a fixed window it never lets twice the limit through across a window boundary, and
the wait it reports is exact.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

KEY_PREFIX = "parley:rl:"


@dataclass(frozen=True)
class Rate:
    """`limit` requests per `period` seconds; a limit of 0 means no limit."""

    limit: int
    period: float

    @property
    def enabled(self) -> bool:
        """Whether this rate limits anything."""
        return self.limit > 0 and self.period > 0

    @property
    def interval(self) -> float:
        """Seconds between two requests once the burst is spent."""
        return self.period / self.limit


@dataclass(frozen=True)
class Charge:
    """One request counted against `key` at `rate`."""

    key: str
    rate: Rate


def charge(scope: str, subject: str, rate: Rate) -> Charge:
    """A charge on `subject` (a username, an address) within `scope` (`login:user`, ...).

    The subject is hashed: keys stay short and printable whatever the input, and the store
    does not list usernames or addresses.
    """
    digest = hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return Charge(f"{KEY_PREFIX}{scope}:{digest}", rate)


WAIT_RESOLUTION = 0.001  # seconds


def gcra_take(tats: Sequence[float | None], rates: Sequence[Rate], now: float) -> list[float]:
    """New TATs after one request against every key, or raise `Exhausted` (all or nothing).

    `tats[i]` is the stored TAT of key `i` (None when absent), in the same unit as `now`
    and the rates' periods.
    """
    wait = 0.0
    new_tats = []
    for tat, rate in zip(tats, rates, strict=True):
        new_tat = max(tat if tat is not None else now, now) + rate.interval
        wait = max(wait, new_tat - rate.period - now)
        new_tats.append(new_tat)
    # Float arithmetic can leave a hair above 0 at the exact edge of the burst ((now + period)
    # - period - now): below a millisecond counts as no wait, as in the Redis store, whose
    # script answers whole milliseconds.
    if wait >= WAIT_RESOLUTION:
        raise Exhausted(wait)
    return new_tats


class Exhausted(Exception):
    """A rate is spent; `retry_after` seconds until the request would be allowed."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited for {retry_after:.3f}s")
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str:
        """The `Retry-After` value: whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after)))


class Limiter(ABC):
    """Counts requests per key; shared by every request of a process (or of all, in Redis)."""

    async def take(self, charges: Sequence[Charge]) -> None:
        """Count one request against every enabled charge, or none and raise `Exhausted`."""
        active = [c for c in charges if c.rate.enabled]
        if active:
            await self._take(active)

    async def give_back(self, charges: Sequence[Charge]) -> None:
        """Undo one `take` of these charges (a request that should not have counted)."""
        active = [c for c in charges if c.rate.enabled]
        if active:
            await self._give_back(active)

    async def start(self) -> None:
        """Connect to the store, where it needs to."""

    async def close(self) -> None:
        """Release what the store holds (connections)."""

    @abstractmethod
    async def _take(self, charges: Sequence[Charge]) -> None: ...

    @abstractmethod
    async def _give_back(self, charges: Sequence[Charge]) -> None: ...
