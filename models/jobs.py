"""Transcoding jobs: documents in the `jobs` collection, one per video, claimed under a lease.

A server process claims a job atomically and renews its lease while FFmpeg works; if the process dies,
the lease runs out and any process takes the job over. Two processes never hold one job at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError

from models.db import Database

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
LIVE = (QUEUED, RUNNING)

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
        }
        try:
            await self.collection.update_one({"video_id": video_id}, {"$set": fields}, upsert=True)
        except DuplicateKeyError:  # another process queued it at the same instant
            await self.collection.update_one({"video_id": video_id}, {"$set": fields})

    async def get(self, video_id: ObjectId) -> dict[str, Any] | None:
        """The video's job, if any."""
        return await self.collection.find_one({"video_id": video_id})

    async def live_for(self, video_ids: list[ObjectId]) -> set[ObjectId]:
        """Which of these videos have a queued or running job."""
        docs = await self.collection.find(
            {"video_id": {"$in": video_ids}, "status": {"$in": list(LIVE)}}, {"video_id": 1}
        ).to_list(None)
        return {doc["video_id"] for doc in docs}

    async def claim(self, owner: str, now: datetime, lease_s: float) -> dict[str, Any] | None:
        """Take one due job, or one whose holder's lease ran out; counts the attempt."""
        return await self.collection.find_one_and_update(
            {
                "$or": [
                    {"status": QUEUED, "run_after": {"$lte": now}},
                    {"status": RUNNING, "lease_until": {"$lte": now}},
                ]
            },
            {
                "$set": {
                    "status": RUNNING,
                    "owner": owner,
                    "started_at": now,
                    "lease_until": now + timedelta(seconds=lease_s),
                },
                "$inc": {"attempts": 1},
            },
            sort=[("run_after", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    async def renew(self, video_id: ObjectId, owner: str, now: datetime, lease_s: float) -> bool:
        """Extend the lease; False when the job is gone (video deleted) or another process holds it."""
        result = await self.collection.update_one(
            {"video_id": video_id, "owner": owner, "status": RUNNING},
            {"$set": {"lease_until": now + timedelta(seconds=lease_s)}},
        )
        return result.matched_count == 1

    async def _settle(
        self, video_id: ObjectId, owner: str, fields: dict[str, Any], inc: dict[str, int] | None = None
    ) -> bool:
        update: dict[str, Any] = {"$set": {"lease_until": None, "owner": None, **fields}}
        if inc:
            update["$inc"] = inc
        result = await self.collection.update_one({"video_id": video_id, "owner": owner}, update)
        return result.matched_count == 1

    async def finish(self, video_id: ObjectId, owner: str, now: datetime) -> bool:
        """The job is done (False if it is no longer ours)."""
        return await self._settle(video_id, owner, {"status": DONE, "finished_at": now, "last_error": None})

    async def retry_later(self, video_id: ObjectId, owner: str, when: datetime, error: str) -> bool:
        """A transient failure: run again at `when`."""
        return await self._settle(video_id, owner, {"status": QUEUED, "run_after": when, "last_error": error})

    async def fail(self, video_id: ObjectId, owner: str, now: datetime, error: str) -> bool:
        """Failed for good."""
        return await self._settle(
            video_id, owner, {"status": FAILED, "finished_at": now, "last_error": error}
        )

    async def hand_back(self, video_id: ObjectId, owner: str, now: datetime) -> bool:
        """Stopped by a shutdown: queued again at once, the attempt not counted."""
        return await self._settle(video_id, owner, {"status": QUEUED, "run_after": now}, inc={"attempts": -1})

    async def cancel(self, video_id: ObjectId) -> None:
        """Forget the job: its holder notices at the next renewal and stops FFmpeg."""
        await self.collection.delete_one({"video_id": video_id})
