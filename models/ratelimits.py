"""Rate limits in fixed windows, counted in MongoDB so that every server process shares them."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pymongo import ASCENDING, IndexModel, ReturnDocument

from models.db import Database, upserted

INDEXES = [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_at_ttl")]


@dataclass(frozen=True)
class Limit:
    """COUNT requests per SECONDS."""

    count: int
    seconds: int

    @classmethod
    def parse(cls, spec: str) -> Limit:
        """'10/60' → ten per minute."""
        count, _, seconds = spec.partition("/")
        limit = cls(int(count), int(seconds))
        if limit.count < 1 or limit.seconds < 1:
            raise ValueError(f"rate limit {spec!r} must be COUNT/SECONDS with both above zero")
        return limit


def window_of(limit: Limit, now: datetime) -> tuple[int, datetime]:
    """The fixed window a moment falls in, and when it ends."""
    window = int(now.timestamp() // limit.seconds)
    return window, datetime.fromtimestamp((window + 1) * limit.seconds, tz=UTC)


class RateLimiter:
    """Counts hits per scope and key (hashed: no addresses or e-mails in clear)."""

    def __init__(self, db: Database) -> None:
        self.collection = db.ratelimits

    async def hit(self, scope: str, key: str, limit: Limit, now: datetime) -> float | None:
        """Count one hit; the seconds until the window ends when over the limit, else None."""
        window, ends = window_of(limit, now)
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        doc = await self.collection.find_one_and_update(
            {"_id": f"{scope}:{digest}:{window}"},
            {"$inc": {"count": 1}, "$setOnInsert": {"expires_at": ends + timedelta(seconds=1)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        if upserted(doc)["count"] <= limit.count:
            return None
        return max(1.0, math.ceil(ends.timestamp() - now.timestamp()))


class MemoryRateLimiter:
    """The same fixed windows, counted in this process: for the in-memory database, where there is only
    one process, and where a collection with a TTL index is walked on every access (mongomock), which
    a limit checked on every playback report cannot afford. Keys are hashed as in the database."""

    PRUNE_AT = 10_000  # counters kept before the ended windows are dropped

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], tuple[int, datetime]] = {}

    async def hit(self, scope: str, key: str, limit: Limit, now: datetime) -> float | None:
        """Count one hit; the seconds until the window ends when over the limit, else None."""
        window, ends = window_of(limit, now)
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        if len(self.counts) >= self.PRUNE_AT:
            self.counts = {k: v for k, v in self.counts.items() if v[1] > now}
        count = self.counts.get((scope, digest, window), (0, ends))[0] + 1
        self.counts[(scope, digest, window)] = (count, ends)
        if count <= limit.count:
            return None
        return max(1.0, math.ceil(ends.timestamp() - now.timestamp()))
