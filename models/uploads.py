"""Resumable (tus) uploads under way: who started one, how long it is, what the video will be called.

How much has arrived is not stored here: the bytes on disk are the truth for the offset.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel, ReturnDocument

from models.db import Database, object_id

INDEXES = [
    IndexModel([("user_id", ASCENDING)], name="user_id"),
    IndexModel([("expires_at", ASCENDING)], name="expires_at"),
]


def new_upload(
    user_id: str,
    length: int,
    fields: dict[str, Any],
    filename: str | None,
    now: datetime,
    expires_at: datetime,
) -> dict[str, Any]:
    """An upload just created: nothing received yet, no video yet."""
    return {
        "_id": ObjectId(),
        "user_id": user_id,
        "length": length,
        "fields": fields,
        "filename": filename,
        "created_at": now,
        "expires_at": expires_at,
        "video_id": None,
    }


class Uploads:
    """Queries on the `uploads` collection."""

    def __init__(self, db: Database) -> None:
        self.collection = db.uploads

    async def insert(self, doc: dict[str, Any]) -> None:
        await self.collection.insert_one(doc)

    async def get(self, upload_id: str) -> dict[str, Any] | None:
        """The upload with this id; None for an unknown or malformed id."""
        oid = object_id(upload_id)
        return None if oid is None else await self.collection.find_one({"_id": oid})

    async def touch(self, upload_id: ObjectId, expires_at: datetime) -> dict[str, Any] | None:
        """Push the expiry back after progress."""
        return await self.collection.find_one_and_update(
            {"_id": upload_id}, {"$set": {"expires_at": expires_at}}, return_document=ReturnDocument.AFTER
        )

    async def completed(self, upload_id: ObjectId, video_id: ObjectId) -> None:
        """The upload became this video."""
        await self.collection.update_one({"_id": upload_id}, {"$set": {"video_id": video_id}})

    async def unfinished(self, now: datetime) -> list[dict[str, Any]]:
        """Uploads still receiving bytes: not yet a video, not expired."""
        query = {"video_id": None, "expires_at": {"$gt": now}}
        projection = {"user_id": 1, "length": 1, "video_id": 1}
        return await self.collection.find(query, projection).to_list(None)

    async def delete(self, upload_id: ObjectId) -> None:
        await self.collection.delete_one({"_id": upload_id})

    async def expired(self, now: datetime) -> list[dict[str, Any]]:
        """Uploads whose expiry has passed (finished ones too: their record is no longer needed)."""
        return await self.collection.find({"expires_at": {"$lte": now}}).to_list(None)
