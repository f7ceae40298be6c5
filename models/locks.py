"""Named leases in MongoDB: one holder at a time across every process on the database (an edit of a
video's manifests, which an api node and any transcode node may both make).

A lease is a document `{_id: name, owner, until}`. Taking it succeeds when there is none, when it has
lapsed (its holder died: it is taken over after `until`) or when the caller already holds it; two
callers racing to create it meet on the `_id` and one gets DuplicateKeyError, i.e. "held".
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from models.db import Database

# The collection `locks`: found by _id (the lease's name) only, so no index of its own.


class Leases:
    def __init__(self, db: Database) -> None:
        self.collection = db.locks

    async def take(self, name: str, owner: str, now: datetime, ttl_s: float) -> bool:
        """True when `owner` now holds `name` until now + ttl_s."""
        try:
            found = await self.collection.find_one_and_update(
                {"_id": name, "$or": [{"until": {"$lt": now}}, {"owner": owner}]},
                {"$set": {"owner": owner, "until": now + timedelta(seconds=ttl_s)}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return False
        return found is not None and found.get("owner") == owner

    async def give_back(self, name: str, owner: str) -> None:
        await self.collection.delete_one({"_id": name, "owner": owner})
