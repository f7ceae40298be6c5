"""Videos: documents in the `videos` collection, the list queries, and their in-process cache.

What users list (ready videos) changes rarely and is read on every page view, so its sorted result is
cached per filter and dropped on every write made through this process that could change it. With a
real MongoDB it also expires after a short TTL, so that writes by other server processes or by admins in
mongosh show within seconds; the in-memory database has no other writers, so there it lives until the
next write.
"""

from __future__ import annotations

import math
import posixpath
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from bson import ObjectId
from cachetools import Cache, LRUCache, TTLCache
from pydantic import AfterValidator, Field
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument

from core.clock import isoformat
from core.validation import Body, Declares, optional_not_null
from models.db import Database, object_id

PENDING, PROCESSING, READY, FAILED = "pending", "processing", "ready", "failed"
STATUSES = (PENDING, PROCESSING, READY, FAILED)

NEWEST_FIRST = [("created_at", DESCENDING), ("_id", DESCENDING)]

INDEXES = [
    IndexModel([("status", ASCENDING), *NEWEST_FIRST], name="status_newest"),
    IndexModel(
        [("category_id", ASCENDING), ("status", ASCENDING), *NEWEST_FIRST], name="category_status_newest"
    ),
    IndexModel(NEWEST_FIRST, name="newest"),
]

CACHE_ENTRIES = 256
# Writes of only these fields cannot change what users list (ready videos by title, category, age).
LIST_NEUTRAL = frozenset({"transcode_progress", "updated_at"})


def not_blank(value: str) -> str:
    """A title of more than white space, trimmed."""
    if not value.strip():
        raise ValueError("This field may not be blank.")
    return value.strip()


# The fields staff set on a video, declared once: the upload's form, PATCH, the service and the JSON.
# A title holds more than white space: the pattern says so (Python's \s is what strip() removes).
Title = Annotated[
    str, Field(min_length=1, max_length=200), AfterValidator(not_blank), Declares(pattern=r"\S")
]
Description = Annotated[str, Field(max_length=5000)]
CategoryRef = Annotated[str | None, Field(description="A category's id or slug; empty or null: none.")]


class VideoFields(Body):
    """What an upload sets."""

    title: Title
    description: Description = ""
    category: CategoryRef = None


class VideoPatch(Body):
    """What PATCH may change; only the fields sent are changed."""

    title: optional_not_null(Title) = None
    description: optional_not_null(Description) = None
    category: CategoryRef = None


def playable_path(doc: dict[str, Any]) -> str | None:
    """The master playlist a player is given: the finished ladder, else the one still growing."""
    if doc.get("status") == READY and doc.get("hls_path"):
        return str(doc["hls_path"])
    if doc.get("status") == PROCESSING and doc.get("playable") and doc.get("live_path"):
        return str(doc["live_path"])
    return None


def ladder_folder(doc: dict[str, Any]) -> str:
    """The folder (key prefix) of the ladder a player is given: videos/<id>/hls-<run>."""
    return posixpath.dirname(playable_path(doc) or "")


def is_finished_ladder(doc: dict[str, Any]) -> bool:
    """True when what is served is the final (VOD) ladder, not a growing one."""
    return doc.get("status") == READY


# What users may see while a video is still being transcoded: ready ones, and those playable already.
PLAYABLE_WHILE_PROCESSING = {"status": PROCESSING, "playable": True}


@dataclass(frozen=True)
class VideoQuery:
    """A list request, already validated."""

    statuses: tuple[str, ...] | None  # None: every status (staff)
    category_id: ObjectId | None = None
    search: tuple[str, ...] = ()
    playable_too: bool = False  # also processing videos that can be watched already

    def filter(self) -> dict[str, Any]:
        """The MongoDB filter: every search word must appear in the title or the description."""
        clauses: list[dict[str, Any]] = []
        if self.statuses is not None:
            by_status = (
                {"status": {"$in": list(self.statuses)}}
                if len(self.statuses) > 1
                else {"status": self.statuses[0]}
            )
            clauses.append(
                {"$or": [by_status, PLAYABLE_WHILE_PROCESSING]} if self.playable_too else by_status
            )
        if self.category_id is not None:
            clauses.append({"category_id": self.category_id})
        for word in self.search:
            pattern = {"$regex": re.escape(word), "$options": "i"}
            clauses.append({"$or": [{"title": pattern}, {"description": pattern}]})
        return {"$and": clauses} if len(clauses) > 1 else (clauses[0] if clauses else {})


def new_video(
    video_id: ObjectId,
    title: str,
    description: str,
    category_id: ObjectId | None,
    source: str,
    uploaded_by: str | None,
    now: datetime,
) -> dict[str, Any]:
    """A video document for a new upload, waiting for its transcode."""
    return {
        "_id": video_id,
        "title": title,
        "description": description,
        "category_id": category_id,
        "created_at": now,
        "updated_at": now,
        "status": PENDING,
        "transcode_progress": 0,
        "error": None,
        "duration": None,
        "width": None,
        "height": None,
        "source": source,
        "renditions": [],
        "playable": False,
        "hls_path": None,
        "live_path": None,
        "thumbnail_path": None,
        "storyboard_path": None,
        "uploaded_by": uploaded_by,
    }


def to_api(
    doc: dict[str, Any], watch_position: float = 0.0, urls: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A video as the API shows it; stream URLs come from the caller (they carry grants)."""
    urls = urls or {}
    category = doc.get("category_id")
    return {
        "id": str(doc["_id"]),
        "title": doc.get("title", ""),
        "description": doc.get("description", ""),
        "category": str(category) if category else None,
        "created_at": isoformat(doc.get("created_at")),
        "status": doc.get("status", PENDING),
        "transcode_progress": doc.get("transcode_progress", 0),
        "error": doc.get("error"),
        "duration": doc.get("duration"),
        "width": doc.get("width"),
        "height": doc.get("height"),
        "playable": bool(urls.get("hls_url")),
        "thumbnail_url": urls.get("thumbnail_url"),
        "hls_url": urls.get("hls_url"),
        "storyboard_url": urls.get("storyboard_url"),
        "renditions": urls.get("renditions", []),
        "watch_position": watch_position,
    }


def new_cache(ttl_s: float) -> Cache[Any, Any]:
    """An LRU cache whose entries also expire after ttl_s (never, when ttl_s is infinite)."""
    if math.isinf(ttl_s):
        return LRUCache(CACHE_ENTRIES)
    return TTLCache(CACHE_ENTRIES, max(ttl_s, 1e-9))


class Videos:
    """Queries on the `videos` collection."""

    def __init__(self, db: Database, cache_ttl_s: float = 2.0) -> None:
        self.collection = db.videos
        self.cache_ttl_s = cache_ttl_s
        self._lists: Cache[VideoQuery, list[dict[str, Any]]] = new_cache(cache_ttl_s)
        self._streamed: Cache[ObjectId, dict[str, Any] | None] = new_cache(cache_ttl_s)

    def invalidate(self) -> None:
        """Forget every cached list and document (after any write)."""
        self._lists.clear()
        self._streamed.clear()

    async def for_streaming(self, video_id: str) -> dict[str, Any] | None:
        """One video for the stream handlers, which ask for it on every segment: cached like the lists."""
        oid = object_id(video_id)
        if oid is None:
            return None
        if oid in self._streamed:
            return self._streamed[oid]
        doc = self._streamed[oid] = await self.collection.find_one({"_id": oid})
        return doc

    async def get(self, video_id: str | ObjectId) -> dict[str, Any] | None:
        """One video by id; None for an unknown or malformed id."""
        oid = video_id if isinstance(video_id, ObjectId) else object_id(video_id)
        return await self.collection.find_one({"_id": oid}) if oid else None

    async def by_ids(self, ids: list[ObjectId]) -> dict[ObjectId, dict[str, Any]]:
        """Several videos by id, in one query."""
        docs = await self.collection.find({"_id": {"$in": ids}}).to_list(None) if ids else []
        return {doc["_id"]: doc for doc in docs}

    async def _matching(self, query: VideoQuery) -> list[dict[str, Any]]:
        return await self.collection.find(query.filter()).sort(NEWEST_FIRST).to_list(None)

    async def page(
        self, query: VideoQuery, offset: int, limit: int | None
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of a list, newest first, and how many match in all."""
        cacheable = query.statuses == (READY,) and self.cache_ttl_s > 0
        if not cacheable:
            count = await self.collection.count_documents(query.filter())
            cursor = self.collection.find(query.filter()).sort(NEWEST_FIRST).skip(offset)
            docs = await (cursor.limit(limit) if limit is not None else cursor).to_list(None)
            return docs, count
        cached = self._lists.get(query)
        if cached is None:
            cached = self._lists[query] = await self._matching(query)
        end = None if limit is None else offset + limit
        return cached[offset:end], len(cached)

    async def insert(self, doc: dict[str, Any]) -> None:
        await self.collection.insert_one(doc)
        self.invalidate()

    async def update(
        self, video_id: ObjectId, fields: dict[str, Any], now: datetime, match: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Set fields (if the video still matches `match`); the updated video or None."""
        doc = await self.collection.find_one_and_update(
            {"_id": video_id, **(match or {})},
            {"$set": {**fields, "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        if not set(fields) <= LIST_NEUTRAL:
            self.invalidate()
        return doc

    async def delete(self, video_id: ObjectId) -> bool:
        result = await self.collection.delete_one({"_id": video_id})
        self.invalidate()
        return result.deleted_count == 1

    async def pending_with_source(self, limit: int) -> list[ObjectId]:
        """Ids of pending videos that have a source to transcode."""
        docs = await self.collection.find(
            {"status": PENDING, "source": {"$nin": [None, ""]}}, {"_id": 1}
        ).to_list(limit)
        return [doc["_id"] for doc in docs]

    async def count_in_category(self, category_id: ObjectId) -> int:
        return await self.collection.count_documents({"category_id": category_id})
