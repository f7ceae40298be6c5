"""Watch progress: one row per user and video, for resuming and "continue watching"."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument

from models.db import Database, upserted

INDEXES = [
    IndexModel([("user_id", ASCENDING), ("video_id", ASCENDING)], unique=True, name="user_video_unique"),
    IndexModel(
        [("user_id", ASCENDING), ("finished", ASCENDING), ("updated_at", DESCENDING)], name="continue"
    ),
    IndexModel([("video_id", ASCENDING)], name="video_id"),
]

# Within this share of the end, a video counts as watched to the end.
FINISHED_SHARE = 0.95


def is_finished(position: float, duration: float | None) -> bool:
    """True once the position is close enough to the end."""
    return duration is not None and duration > 0 and position >= FINISHED_SHARE * duration


class Progress:
    """Queries on the `progress` collection."""

    def __init__(self, db: Database) -> None:
        self.collection = db.progress

    async def save(
        self, user_id: str, video_id: ObjectId, position: float, duration: float | None, now: datetime
    ) -> dict[str, Any]:
        """Upsert the position (already clamped by the caller)."""
        doc = await self.collection.find_one_and_update(
            {"user_id": user_id, "video_id": video_id},
            {
                "$set": {
                    "position": position,
                    "duration": duration,
                    "updated_at": now,
                    "finished": is_finished(position, duration),
                }
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return upserted(doc)

    async def get(self, user_id: str, video_id: ObjectId) -> dict[str, Any] | None:
        """The user's row for one video."""
        return await self.collection.find_one({"user_id": user_id, "video_id": video_id})

    async def positions(self, user_id: str, video_ids: Iterable[ObjectId]) -> dict[ObjectId, float]:
        """The user's positions in these videos, in one query."""
        ids = list(video_ids)
        if not ids:
            return {}
        rows = await self.collection.find(
            {"user_id": user_id, "video_id": {"$in": ids}}, {"video_id": 1, "position": 1}
        ).to_list(None)
        return {row["video_id"]: row["position"] for row in rows}

    async def started(self, user_id: str, limit: int) -> list[dict[str, Any]]:
        """Rows of videos begun and not finished, most recently watched first."""
        return (
            await self.collection.find({"user_id": user_id, "finished": False, "position": {"$gt": 0}})
            .sort([("updated_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
            .to_list(None)
        )

    async def delete_for_video(self, video_id: ObjectId) -> None:
        """Forget every row of a deleted video."""
        await self.collection.delete_many({"video_id": video_id})

    async def delete_for_user(self, user_id: str) -> None:
        """Forget every row of a deleted user."""
        await self.collection.delete_many({"user_id": user_id})
