"""The outbox: every mail is written here first and sent by a background task, so none is lost.

Bodies carry codes, so they are dropped once the mail is sent; a mail that failed for good keeps them
so that an admin can re-queue it (docs/admin.md), and its codes expire as usual.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel, ReturnDocument

from models.db import Database

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"

INDEXES = [
    IndexModel([("status", ASCENDING), ("next_attempt_at", ASCENDING)], name="status_next_attempt"),
]


class Outbox:
    """Queries on the `outbox` collection."""

    def __init__(self, db: Database) -> None:
        self.collection = db.outbox

    async def enqueue(self, mail: dict[str, Any], now: datetime) -> ObjectId:
        """Store a rendered mail for sending as soon as possible."""
        doc = {
            **mail,
            "status": PENDING,
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
            "last_error": None,
        }
        result = await self.collection.insert_one(doc)
        return result.inserted_id

    async def claim_due(self, now: datetime, lease_s: float) -> dict[str, Any] | None:
        """Take one mail that is due (or whose sender died mid-send) for sending, atomically."""
        return await self.collection.find_one_and_update(
            {
                "$or": [
                    {"status": PENDING, "next_attempt_at": {"$lte": now}},
                    {"status": SENDING, "lease_until": {"$lte": now}},
                ]
            },
            {
                "$set": {"status": SENDING, "lease_until": now + timedelta(seconds=lease_s)},
                "$inc": {"attempts": 1},
            },
            sort=[("next_attempt_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    async def mark_sent(self, mail_id: ObjectId, now: datetime) -> None:
        """Sent: keep who and when, drop the bodies (they carry codes)."""
        await self.collection.update_one(
            {"_id": mail_id},
            {
                "$set": {"status": SENT, "sent_at": now, "last_error": None},
                "$unset": {"text": "", "html": "", "lease_until": ""},
            },
        )

    async def retry_later(self, mail_id: ObjectId, when: datetime, error: str) -> None:
        """A failed attempt: try again at `when`."""
        await self.collection.update_one(
            {"_id": mail_id},
            {
                "$set": {"status": PENDING, "next_attempt_at": when, "last_error": error},
                "$unset": {"lease_until": ""},
            },
        )

    async def give_up(self, mail_id: ObjectId, now: datetime, error: str) -> None:
        """Failed for good: keep the reason, and the bodies so that an admin can re-queue it."""
        await self.collection.update_one(
            {"_id": mail_id},
            {
                "$set": {"status": FAILED, "failed_at": now, "last_error": error},
                "$unset": {"lease_until": ""},
            },
        )
