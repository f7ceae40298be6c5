"""Rate limits on the account flows, counted in MongoDB so every server process shares them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from core.clock import Clock
from core.errors import Throttled
from models.ratelimits import Limit


class Counter(Protocol):
    """Where hits are counted: MongoDB (models.ratelimits.RateLimiter) or the process (MemoryRateLimiter)."""

    async def hit(self, scope: str, key: str, limit: Limit, now: datetime) -> float | None: ...


class Throttle:
    """Raises Throttled once any of the keys has used up its limit in this scope."""

    def __init__(self, limiter: Counter, clock: Clock) -> None:
        self.limiter = limiter
        self.clock = clock

    async def check(self, scope: str, spec: str, keys: Sequence[str]) -> None:
        """Count one hit for every key; Throttled (with the wait in seconds) when one is over `spec`."""
        limit, now = Limit.parse(spec), self.clock()
        waits = [await self.limiter.hit(scope, key, limit, now) for key in keys]
        wait = max((w for w in waits if w is not None), default=None)
        if wait is not None:
            raise Throttled(int(wait))
