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


class RateLimiter:
    """Counts hits per scope and key (hashed: no addresses or e-mails in clear)."""

    def __init__(self, db: Database) -> None:
        self.collection = db.ratelimits

    async def hit(self, scope: str, key: str, limit: Limit, now: datetime) -> float | None:
        """Count one hit; the seconds until the window ends when over the limit, else None."""
        epoch = now.timestamp()
        window = int(epoch // limit.seconds)
        ends = datetime.fromtimestamp((window + 1) * limit.seconds, tz=UTC)
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        doc = await self.collection.find_one_and_update(
            {"_id": f"{scope}:{digest}:{window}"},
            {"$inc": {"count": 1}, "$setOnInsert": {"expires_at": ends + timedelta(seconds=1)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        if upserted(doc)["count"] <= limit.count:
            return None
        return max(1.0, math.ceil(ends.timestamp() - epoch))
