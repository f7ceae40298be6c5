"""Playback analytics: per-session aggregates, raw events under a TTL, and per-day counts per video.

- `playback_sessions`: one document per (user, session id) with what the session's events add up to,
  updated by atomic `$inc`/`$max`/`$addToSet` in a compare-and-set on the session's last event number,
  so that a replayed batch changes nothing.
- `playback_events`: the raw events, each expiring after `analytics.raw_events_days` (a TTL index). On
  the in-memory database they are kept in the process instead, in a bounded buffer: mongomock walks a
  collection with a TTL index on every access, which would put a scan of a growing collection on the
  request path.
- `video_days`: one document per (video, UTC day): views, watch seconds, sessions. The catalogue's
  popularity and the admin totals read these (a few per video), never the sessions.

No client address is stored anywhere.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError

from models.db import Database, aggregate

SESSIONS_INDEXES = [
    IndexModel([("video_id", ASCENDING), ("started", DESCENDING)], name="video_started"),
    IndexModel([("user_id", ASCENDING)], name="user_id"),
]
EVENTS_INDEXES = [
    IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_at_ttl"),
    IndexModel([("session", ASCENDING)], name="session"),
]
DAYS_INDEXES = [
    IndexModel([("day", DESCENDING), ("video_id", ASCENDING)], name="day_video"),
    IndexModel([("video_id", ASCENDING)], name="video_id"),
]

RETENTION_BUCKETS = 20


def day_of(moment: datetime) -> datetime:
    """Midnight UTC of the day a moment falls on."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def day_id(video_id: ObjectId, day: datetime) -> str:
    return f"{video_id}:{day:%Y-%m-%d}"


@dataclass(frozen=True)
class Session:
    """A playback session as stored: who, what, and what its events so far add up to."""

    id: str
    user_id: str
    video_id: ObjectId
    started: datetime
    max_seq: int
    position: float
    rendition: str | None
    watched_s: float
    viewed: bool
    doc: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Session:
        return cls(
            id=doc["_id"],
            user_id=doc["user_id"],
            video_id=doc["video_id"],
            started=doc["started"],
            max_seq=int(doc.get("max_seq", -1)),
            position=float(doc.get("position", 0)),
            rendition=doc.get("rendition"),
            watched_s=float(doc.get("watched_s", 0)),
            viewed=bool(doc.get("viewed")),
            doc=doc,
        )


class Sessions:
    """Queries on `playback_sessions`."""

    def __init__(self, db: Database) -> None:
        self.collection = db.playback_sessions

    async def open(self, session_id: str, user_id: str, video_id: ObjectId, now: datetime) -> Session:
        """The session's document, created on its first batch."""
        doc = await self.collection.find_one({"_id": session_id})
        if doc is None:
            new = {
                "_id": session_id,
                "user_id": user_id,
                "video_id": video_id,
                "started": now,
                "updated": now,
                "max_seq": -1,
                "position": 0.0,
                "rendition": None,
                "watched_s": 0.0,
                "viewed": False,
            }
            try:
                await self.collection.insert_one(new)
                doc = new
            except DuplicateKeyError:  # another request of the same session created it first
                doc = await self.collection.find_one({"_id": session_id})
        assert doc is not None
        return Session.from_doc(doc)

    async def apply(self, session: Session, change: dict[str, Any]) -> Session | None:
        """Apply a batch's update if no other batch moved the session on since it was read (else None)."""
        doc = await self.collection.find_one_and_update(
            {"_id": session.id, "max_seq": session.max_seq},
            change,
            return_document=ReturnDocument.AFTER,
        )
        return Session.from_doc(doc) if doc else None

    async def mark_viewed(self, session_id: str, now: datetime) -> bool:
        """Count the session's view once: True for the one call that did."""
        result = await self.collection.update_one(
            {"_id": session_id, "viewed": False}, {"$set": {"viewed": True, "viewed_at": now}}
        )
        return result.modified_count == 1

    async def for_video(self, video_id: ObjectId, since: datetime) -> list[dict[str, Any]]:
        """Sessions of a video started since a moment (for staff stats; indexed by video and start)."""
        cursor = self.collection.find({"video_id": video_id, "started": {"$gte": since}}, {"_id": 0})
        docs: list[dict[str, Any]] = await cursor.to_list(None)
        return docs

    async def delete_for_user(self, user_id: str) -> int:
        result = await self.collection.delete_many({"user_id": user_id})
        return int(result.deleted_count)

    async def delete_for_video(self, video_id: ObjectId) -> None:
        await self.collection.delete_many({"video_id": video_id})


class RawEvents(Protocol):
    """Where raw events wait until they expire."""

    async def add(self, session_id: str, events: list[dict[str, Any]], expires_at: datetime) -> None: ...

    async def delete_for_sessions(self, prefix: str) -> None: ...


class MongoRawEvents:
    """Raw events in `playback_events`, dropped by MongoDB's TTL monitor."""

    def __init__(self, db: Database) -> None:
        self.collection = db.playback_events

    async def add(self, session_id: str, events: list[dict[str, Any]], expires_at: datetime) -> None:
        docs = [
            {"_id": f"{session_id}:{event['seq']}", "session": session_id, "expires_at": expires_at, **event}
            for event in events
        ]
        if docs:
            try:
                await self.collection.insert_many(docs, ordered=False)
            except Exception as err:  # a replayed event is already there: that is the point of its _id
                if "E11000" not in str(err) and "duplicate" not in str(err).lower():
                    raise

    async def delete_for_sessions(self, prefix: str) -> None:
        """Every event of the sessions whose id starts with `prefix` (a user's: `<user id>:`)."""
        await self.collection.delete_many({"session": {"$regex": f"^{prefix}"}})


class MemoryRawEvents:
    """Raw events in the process (the in-memory database), at most `capacity` of them, oldest out first."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.events: collections.deque[tuple[str, datetime, dict[str, Any]]] = collections.deque(
            maxlen=capacity
        )

    async def add(self, session_id: str, events: list[dict[str, Any]], expires_at: datetime) -> None:
        now = datetime.now(UTC)
        while self.events and self.events[0][1] <= now:
            self.events.popleft()
        self.events.extend((session_id, expires_at, event) for event in events)

    async def delete_for_sessions(self, prefix: str) -> None:
        kept = [entry for entry in self.events if not entry[0].startswith(prefix)]
        self.events.clear()
        self.events.extend(kept)


class VideoDays:
    """Queries on `video_days`: views, watch seconds and sessions per video and UTC day."""

    def __init__(self, db: Database) -> None:
        self.collection = db.video_days

    async def add(
        self, video_id: ObjectId, now: datetime, *, views: int = 0, watch_s: float = 0, sessions: int = 0
    ) -> None:
        day = day_of(now)
        await self.collection.update_one(
            {"_id": day_id(video_id, day)},
            {
                "$inc": {"views": views, "watch_s": watch_s, "sessions": sessions},
                "$setOnInsert": {"video_id": video_id, "day": day},
            },
            upsert=True,
        )

    async def views_of(self, video_id: ObjectId, now: datetime, days: int) -> int:
        """One video's views in the last `days` days (today included), from at most `days` documents."""
        today = day_of(now)
        ids = [day_id(video_id, today - timedelta(days=n)) for n in range(days)]
        docs = await self.collection.find({"_id": {"$in": ids}}, {"views": 1}).to_list(None)
        return sum(int(doc.get("views", 0)) for doc in docs)

    async def totals_by_video(self, now: datetime, days: int) -> dict[ObjectId, dict[str, float]]:
        """Every video's views, watch seconds and sessions in the last `days` days (today included)."""
        since = day_of(now) - timedelta(days=days - 1)
        rows = await aggregate(
            self.collection,
            [
                {"$match": {"day": {"$gte": since}}},
                {
                    "$group": {
                        "_id": "$video_id",
                        "views": {"$sum": "$views"},
                        "watch_s": {"$sum": "$watch_s"},
                        "sessions": {"$sum": "$sessions"},
                    }
                },
            ],
        )
        return {
            row["_id"]: {"views": row["views"], "watch_s": row["watch_s"], "sessions": row["sessions"]}
            for row in rows
        }

    async def delete_for_video(self, video_id: ObjectId) -> None:
        await self.collection.delete_many({"video_id": video_id})


def merge_counts(rows: Iterable[Mapping[str, Any]], key: str) -> dict[str, float]:
    """The sum of each name's number over several documents' `key` sub-document."""
    total: dict[str, float] = collections.defaultdict(float)
    for row in rows:
        for name, value in (row.get(key) or {}).items():
            total[name] += value
    return dict(total)
