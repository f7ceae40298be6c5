"""Login tokens: random, handed out once, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel

from models.db import Database

INDEXES = [
    IndexModel([("user_id", ASCENDING)], name="user_id"),
    # A real MongoDB drops expired tokens by itself; the server also checks the time.
    IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_at_ttl"),
]


def digest(token: str) -> str:
    """The stored form of a token; the token is 256 random bits, so a plain hash suffices."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Tokens:
    """Queries on the `tokens` collection."""

    def __init__(self, db: Database) -> None:
        self.collection = db.tokens

    async def issue(self, user_id: str, now: datetime, lifetime_s: int | None, epoch: int = 0) -> str:
        """Make a token for a user in its current credentials epoch; the caller sees it once, the
        database only its hash."""
        token = secrets.token_hex(32)
        expires = now + timedelta(seconds=lifetime_s) if lifetime_s else None
        await self.collection.insert_one(
            {
                "_id": digest(token),
                "user_id": user_id,
                "epoch": epoch,
                "created_at": now,
                "expires_at": expires,
            }
        )
        return token

    async def holder(self, token: str, now: datetime) -> tuple[str, int] | None:
        """The user a live token belongs to and the credentials epoch it was issued in, or None."""
        doc = await self.collection.find_one({"_id": digest(token)})
        if doc is None:
            return None
        expires = doc.get("expires_at")
        if expires is not None and expires <= now:
            return None
        return doc["user_id"], int(doc.get("epoch", 0))

    async def move_to_epoch(self, token: str, epoch: int) -> None:
        """Carry one token (the caller's own) into the user's new credentials epoch."""
        await self.collection.update_one({"_id": digest(token)}, {"$set": {"epoch": epoch}})

    async def revoke_other_epochs(self, user_id: str, epoch: int) -> int:
        """Revoke every token of a user that was not issued in this credentials epoch."""
        result = await self.collection.delete_many({"user_id": user_id, "epoch": {"$ne": epoch}})
        return result.deleted_count

    async def revoke_all(self, user_id: str, keep: str | None = None) -> int:
        """Revoke every token of a user, except `keep` (the caller's own) when given."""
        query: dict[str, Any] = {"user_id": user_id}
        if keep is not None:
            query["_id"] = {"$ne": digest(keep)}
        result = await self.collection.delete_many(query)
        return result.deleted_count
