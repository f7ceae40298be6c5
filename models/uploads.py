"""Resumable (tus) uploads under way: who started one, how long it is, how much has arrived, which
process may write to it now, and where its bytes are.

The committed `offset` is the truth every API process reads: bytes count once they are where any
process can read them (the shared media root, or the bucket's parts and tail). A PATCH writes only
while it holds the upload's lease (`lease_owner` until `lease_until`), and commits only if it still
holds it and the offset is the one it started from, so a writer that lost its lease changes nothing.
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
    new_video_id: ObjectId,
) -> dict[str, Any]:
    """An upload just created: nothing received yet, no video yet (`new_video_id` is the one it becomes)."""
    return {
        "_id": ObjectId(),
        "user_id": user_id,
        "length": length,
        "fields": fields,
        "filename": filename,
        "created_at": now,
        "expires_at": expires_at,
        "video_id": None,
        "new_video_id": new_video_id,
        "offset": 0,
        "lease_owner": None,
        "lease_until": None,
        # With an object store: the multipart upload, its committed parts, and the tail's length.
        "multipart_id": None,
        "parts": [],
        "parts_bytes": 0,
        "tail": 0,
    }


class Uploads:
    """Queries on the `uploads` collection."""

    def __init__(self, db: Database) -> None:
        self.collection = db.uploads

    async def insert(self, doc: dict[str, Any]) -> None:
        await self.collection.insert_one(doc)

    async def get(self, upload_id: str | ObjectId) -> dict[str, Any] | None:
        """The upload with this id; None for an unknown or malformed id."""
        oid = object_id(str(upload_id))
        return None if oid is None else await self.collection.find_one({"_id": oid})

    async def acquire(
        self, upload_id: ObjectId, owner: str, now: datetime, until: datetime
    ) -> dict[str, Any] | None:
        """Take the upload's lease when nobody holds it (or its holder let it run out); the upload, or
        None when another holds it."""
        free = {"$or": [{"lease_until": None}, {"lease_until": {"$lte": now}}]}
        return await self.collection.find_one_and_update(
            {"_id": upload_id, **free},
            {"$set": {"lease_owner": owner, "lease_until": until}},
            return_document=ReturnDocument.AFTER,
        )

    async def renew(self, upload_id: ObjectId, owner: str, until: datetime) -> bool:
        """Extend a lease this owner still holds; False when it was lost."""
        answer = await self.collection.update_one(
            {"_id": upload_id, "lease_owner": owner}, {"$set": {"lease_until": until}}
        )
        return answer.matched_count == 1

    async def release(self, upload_id: ObjectId, owner: str) -> None:
        """Give the lease up (only the holder can)."""
        await self.collection.update_one(
            {"_id": upload_id, "lease_owner": owner}, {"$set": {"lease_owner": None, "lease_until": None}}
        )

    async def commit(self, upload_id: ObjectId, owner: str, since: int, changes: dict[str, Any]) -> bool:
        """Record progress (`changes` holds the new offset) if this owner holds the lease and the offset is
        still `since`; False when either is no longer so."""
        answer = await self.collection.update_one(
            {"_id": upload_id, "lease_owner": owner, "offset": since}, {"$set": changes}
        )
        return answer.matched_count == 1

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
        projection = {"user_id": 1, "length": 1, "video_id": 1, "offset": 1}
        return await self.collection.find(query, projection).to_list(None)

    async def delete(self, upload_id: ObjectId) -> None:
        await self.collection.delete_one({"_id": upload_id})

    async def expired(self, now: datetime) -> list[dict[str, Any]]:
        """Uploads whose expiry has passed (finished ones too: their record is no longer needed)."""
        return await self.collection.find({"expires_at": {"$lte": now}}).to_list(None)
