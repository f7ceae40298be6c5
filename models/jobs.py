"""Transcoding jobs: documents in the `jobs` collection, one live job per video."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel

from models.db import Database

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"

INDEXES = [
    IndexModel([("video_id", ASCENDING)], unique=True, name="video_id_unique"),
    IndexModel([("status", ASCENDING), ("run_after", ASCENDING)], name="status_run_after"),
    IndexModel([("status", ASCENDING), ("lease_until", ASCENDING)], name="status_lease"),
]


class Jobs:
    """Queries on the `jobs` collection."""

    def __init__(self, db: Database) -> None:
        self.collection = db.jobs

    async def enqueue(self, video_id: ObjectId, now: datetime) -> None:
        """Queue (or re-queue) the video's job, with its attempts counted afresh."""
        fields: dict[str, Any] = {
            "status": QUEUED,
            "attempts": 0,
            "run_after": now,
            "queued_at": now,
            "lease_until": None,
            "owner": None,
            "last_error": None,
            "cancel": False,
        }
        await self.collection.update_one({"video_id": video_id}, {"$set": fields}, upsert=True)

    async def get(self, video_id: ObjectId) -> dict[str, Any] | None:
        """The video's job, if any."""
        return await self.collection.find_one({"video_id": video_id})

    async def cancel(self, video_id: ObjectId) -> None:
        """Ask the holder to stop and forget the job."""
        await self.collection.delete_one({"video_id": video_id})
