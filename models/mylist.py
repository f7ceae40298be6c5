"""My list: the videos a user put aside, one row per (user, video)."""

from __future__ import annotations

from datetime import datetime

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel

from models.db import Database

INDEXES = [
    IndexModel([("user_id", ASCENDING), ("video_id", ASCENDING)], unique=True, name="user_video_unique"),
    IndexModel([("user_id", ASCENDING), ("added_at", DESCENDING)], name="user_added"),
    IndexModel([("video_id", ASCENDING)], name="video_id"),
]


class MyList:
    """Queries on the `mylist` collection."""

    def __init__(self, db: Database) -> None:
        self.collection = db.mylist

    async def add(self, user_id: str, video_id: ObjectId, now: datetime) -> None:
        """Put a video on the list (again: it keeps its place)."""
        await self.collection.update_one(
            {"user_id": user_id, "video_id": video_id},
            {"$setOnInsert": {"added_at": now}},
            upsert=True,
        )

    async def remove(self, user_id: str, video_id: ObjectId) -> None:
        await self.collection.delete_one({"user_id": user_id, "video_id": video_id})

    async def video_ids(self, user_id: str) -> list[ObjectId]:
        """The user's videos, most recently added first."""
        rows = (
            await self.collection.find({"user_id": user_id}, {"video_id": 1})
            .sort([("added_at", DESCENDING), ("_id", DESCENDING)])
            .to_list(None)
        )
        return [row["video_id"] for row in rows]

    async def delete_for_user(self, user_id: str) -> None:
        await self.collection.delete_many({"user_id": user_id})

    async def delete_for_video(self, video_id: ObjectId) -> None:
        await self.collection.delete_many({"video_id": video_id})
