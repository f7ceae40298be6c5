"""Videos: documents in the `videos` collection, the list queries, and their in-process cache.

What users list (ready videos) changes rarely and is read on every page view, so its sorted result is
cached per filter and dropped on every write made through this process that could change it. With a
real MongoDB it also expires after a short TTL, so that writes by other server processes or by admins in
mongosh show within seconds; the in-memory database has no other writers, so there it lives until the
next write.
"""

from __future__ import annotations

import dataclasses
import math
import posixpath
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from bson import ObjectId
from cachetools import Cache, LRUCache, TTLCache
from pydantic import AfterValidator, Field
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument

from core.validation import Body, Declares, optional_not_null
from models.db import Database, object_id

PENDING, PROCESSING, READY, FAILED = "pending", "processing", "ready", "failed"
STATUSES = (PENDING, PROCESSING, READY, FAILED)
VideoStatus = Literal["pending", "processing", "ready", "failed"]

NEWEST_FIRST = [("created_at", DESCENDING), ("_id", DESCENDING)]

INDEXES = [
    IndexModel([("status", ASCENDING), *NEWEST_FIRST], name="status_newest"),
    IndexModel(
        [("category_id", ASCENDING), ("status", ASCENDING), *NEWEST_FIRST], name="category_status_newest"
    ),
    IndexModel(NEWEST_FIRST, name="newest"),
]

CACHE_ENTRIES = 256
# Counted views reach the cached lists within this many seconds (a view is not worth a list rebuild).
VIEWS_REFRESH_S = 10.0
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


@dataclass(frozen=True)
class Rendition:
    """One rung of a ladder, as its master playlist lists it."""

    height: int
    width: int
    bandwidth: int

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Rendition:
        """A rendition as the transcoder reports it ({height, width, bandwidth})."""
        return cls(height=doc["height"], width=doc.get("width", 0), bandwidth=doc.get("bandwidth", 0))

    def to_doc(self) -> dict[str, int]:
        return {"height": self.height, "width": self.width, "bandwidth": self.bandwidth}


@dataclass(frozen=True)
class SubtitleTrack:
    """A subtitle track of a video: its id (its folder below the ladder is ``subs/<id>``), BCP 47
    language, label, whether players pick it by default, and where its WebVTT source is kept."""

    id: str
    language: str
    label: str
    default: bool
    source: str

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> SubtitleTrack:
        return cls(
            id=str(doc["id"]),
            language=doc.get("language", "und"),
            label=doc.get("label", ""),
            default=bool(doc.get("default")),
            source=doc.get("source", ""),
        )

    def to_doc(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "language": self.language,
            "label": self.label,
            "default": self.default,
            "source": self.source,
        }


@dataclass(frozen=True)
class Chapter:
    """A chapter: where it starts (seconds) and its title."""

    start: float
    title: str


@dataclass(frozen=True)
class AudioTrack:
    """An audio track staff added to a ladder (another language): `processing` while it is encoded,
    `ready` once the manifests list it, `failed` with the sentence why."""

    id: str
    language: str
    label: str
    default: bool
    status: str
    error: str | None = None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> AudioTrack:
        return cls(
            id=str(doc.get("id", "")),
            language=str(doc.get("language") or "und"),
            label=str(doc.get("label") or ""),
            default=bool(doc.get("default")),
            status=str(doc.get("status") or PROCESSING),
            error=doc.get("error"),
        )


@dataclass(frozen=True)
class Video:
    """A video as the services hand it out: what staff set, where its transcode stands, and where its
    ladder lies. `playable` is the document's flag (a ladder, growing or whole, was announced); what a
    player is given is `playable_path`."""

    id: ObjectId
    title: str
    description: str
    category_id: ObjectId | None
    created_at: datetime | None
    updated_at: datetime | None
    status: VideoStatus
    transcode_progress: float
    error: str | None
    duration: float | None
    width: int | None
    height: int | None
    source: str | None
    renditions: tuple[Rendition, ...]
    playable: bool
    hls_path: str | None
    dash_path: str | None  # the DASH manifest of a CMAF ladder; none for the MPEG-TS ladders before it
    live_path: str | None
    thumbnail_path: str | None
    storyboard_path: str | None
    uploaded_by: str | None
    # The video codecs its master and MPD list ("avc1"; "av01" once the AV1 rungs are whole).
    codecs: tuple[str, ...] = ()
    subtitles: tuple[SubtitleTrack, ...] = ()
    chapters: tuple[Chapter, ...] = ()
    chapters_path: str | None = None  # the WebVTT chapters file, below the ladder folder
    views: int = 0  # views counted from playback sessions, all time
    audio_tracks: tuple[AudioTrack, ...] = ()  # added languages; the source's own sound is not listed

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Video:
        """Map a `videos` document to a Video (admins insert them too: fields may be missing)."""
        return cls(
            id=doc["_id"],
            title=doc.get("title", ""),
            description=doc.get("description", ""),
            category_id=doc.get("category_id"),
            created_at=doc.get("created_at"),
            updated_at=doc.get("updated_at"),
            status=doc.get("status", PENDING),
            transcode_progress=doc.get("transcode_progress", 0),
            error=doc.get("error"),
            duration=doc.get("duration"),
            width=doc.get("width"),
            height=doc.get("height"),
            source=doc.get("source"),
            renditions=tuple(Rendition.from_doc(r) for r in doc.get("renditions") or ()),
            playable=bool(doc.get("playable")),
            hls_path=doc.get("hls_path"),
            dash_path=doc.get("dash_path"),
            live_path=doc.get("live_path"),
            thumbnail_path=doc.get("thumbnail_path"),
            storyboard_path=doc.get("storyboard_path"),
            uploaded_by=doc.get("uploaded_by"),
            codecs=tuple(doc.get("codecs") or (("avc1",) if doc.get("hls_path") else ())),
            subtitles=tuple(SubtitleTrack.from_doc(t) for t in doc.get("subtitles") or ()),
            chapters=tuple(Chapter(float(c["start"]), str(c["title"])) for c in doc.get("chapters") or ()),
            chapters_path=doc.get("chapters_path"),
            views=int(doc.get("views", 0)),
            audio_tracks=tuple(AudioTrack.from_doc(t) for t in doc.get("audio_tracks") or ()),
        )

    @property
    def playable_path(self) -> str | None:
        """The master playlist a player is given: the finished ladder, else the one still growing."""
        if self.status == READY and self.hls_path:
            return str(self.hls_path)
        if self.status == PROCESSING and self.playable and self.live_path:
            return str(self.live_path)
        return None

    @property
    def ladder_folder(self) -> str:
        """The folder (key prefix) of the ladder a player is given: videos/<id>/hls-<run>."""
        return posixpath.dirname(self.playable_path or "")

    @property
    def is_finished(self) -> bool:
        """True when what is served is the final (VOD) ladder, not a growing one."""
        return self.status == READY

    def nearest_rung(self, height: int) -> int | None:
        """The rung asked for, or the largest below it (a course-spec front-end may ask for 480p); None
        without renditions."""
        heights = sorted(r.height for r in self.renditions)
        if not heights:
            return None
        below = [h for h in heights if h <= height]
        return below[-1] if below else heights[0]


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
    *,
    duration: float | None = None,
    width: int | None = None,
    height: int | None = None,
) -> dict[str, Any]:
    """A video document for a new upload (what probing it found), waiting for its transcode."""
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
        "duration": duration,
        "width": width,
        "height": height,
        "source": source,
        "renditions": [],
        "playable": False,
        "hls_path": None,
        "dash_path": None,
        "live_path": None,
        "thumbnail_path": None,
        "storyboard_path": None,
        "uploaded_by": uploaded_by,
    }


def new_cache(ttl_s: float) -> Cache[Any, Any]:
    """An LRU cache whose entries also expire after ttl_s (never, when ttl_s is infinite)."""
    if math.isinf(ttl_s):
        return LRUCache(CACHE_ENTRIES)
    return TTLCache(CACHE_ENTRIES, max(ttl_s, 1e-9))


class Videos:
    """Queries on the `videos` collection; what they find comes back as `Video`s."""

    def __init__(self, db: Database, cache_ttl_s: float = 2.0) -> None:
        self.collection = db.videos
        self.cache_ttl_s = cache_ttl_s
        self._lists: Cache[VideoQuery, list[Video]] = new_cache(cache_ttl_s)
        self._streamed: Cache[ObjectId, Video | None] = new_cache(cache_ttl_s)
        self._views_changed = False
        self._lists_built = time.monotonic()

    def invalidate(self) -> None:
        """Forget every cached list and document (after any write)."""
        self._lists.clear()
        self._streamed.clear()
        self._views_changed = False
        self._lists_built = time.monotonic()

    async def for_streaming(self, video_id: str) -> Video | None:
        """One video for the stream handlers, which ask for it on every segment: cached like the lists."""
        oid = object_id(video_id)
        if oid is None:
            return None
        if oid in self._streamed:
            return self._streamed[oid]
        video = self._streamed[oid] = await self.get(oid)
        return video

    async def get(self, video_id: str | ObjectId) -> Video | None:
        """One video by id; None for an unknown or malformed id."""
        oid = video_id if isinstance(video_id, ObjectId) else object_id(video_id)
        doc = await self.collection.find_one({"_id": oid}) if oid else None
        return Video.from_doc(doc) if doc else None

    async def by_ids(self, ids: list[ObjectId]) -> dict[ObjectId, Video]:
        """Several videos by id, in one query."""
        docs = await self.collection.find({"_id": {"$in": ids}}).to_list(None) if ids else []
        return {doc["_id"]: Video.from_doc(doc) for doc in docs}

    async def _matching(self, query: VideoQuery) -> list[Video]:
        docs = await self.collection.find(query.filter()).sort(NEWEST_FIRST).to_list(None)
        return [Video.from_doc(doc) for doc in docs]

    async def page(self, query: VideoQuery, offset: int, limit: int | None) -> tuple[list[Video], int]:
        """One page of a list, newest first, and how many match in all."""
        cacheable = query.statuses == (READY,) and self.cache_ttl_s > 0
        if not cacheable:
            count = await self.collection.count_documents(query.filter())
            cursor = self.collection.find(query.filter()).sort(NEWEST_FIRST).skip(offset)
            docs = await (cursor.limit(limit) if limit is not None else cursor).to_list(None)
            return [Video.from_doc(doc) for doc in docs], count
        if self._views_changed and time.monotonic() - self._lists_built >= VIEWS_REFRESH_S:
            self.invalidate()
        cached = self._lists.get(query)
        if cached is None:
            cached = self._lists[query] = await self._matching(query)
        end = None if limit is None else offset + limit
        return cached[offset:end], len(cached)

    async def insert(self, doc: dict[str, Any]) -> Video:
        """Store a new video document (`new_video`); the video it is."""
        await self.collection.insert_one(doc)
        self.invalidate()
        return Video.from_doc(doc)

    async def _set(
        self, video_id: ObjectId, fields: dict[str, Any], now: datetime, match: dict[str, Any] | None = None
    ) -> Video | None:
        """Set fields (if the video still matches `match`); the updated video or None."""
        doc = await self.collection.find_one_and_update(
            {"_id": video_id, **(match or {})},
            {"$set": {**fields, "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        if not set(fields) <= LIST_NEUTRAL:
            self.invalidate()
        return Video.from_doc(doc) if doc else None

    async def add_audio_track(self, video_id: ObjectId, track: AudioTrack, now: datetime) -> None:
        """A new audio track (processing) listed on the video."""
        await self.collection.update_one(
            {"_id": video_id},
            {"$push": {"audio_tracks": track.__dict__}, "$set": {"updated_at": now}},
        )
        self.invalidate()

    async def set_audio_track(
        self, video_id: ObjectId, track_id: str, fields: dict[str, Any], now: datetime
    ) -> bool:
        """Change one audio track's fields (status, error, default); False when it is gone."""
        changes = {f"audio_tracks.$.{name}": value for name, value in fields.items()}
        done = await self.collection.update_one(
            {"_id": video_id, "audio_tracks.id": track_id}, {"$set": {**changes, "updated_at": now}}
        )
        self.invalidate()
        return bool(done.matched_count)

    async def remove_audio_track(self, video_id: ObjectId, track_id: str, now: datetime) -> None:
        await self.collection.update_one(
            {"_id": video_id},
            {"$pull": {"audio_tracks": {"id": track_id}}, "$set": {"updated_at": now}},
        )
        self.invalidate()

    async def edit(self, video_id: ObjectId, changes: Mapping[str, Any], now: datetime) -> Video | None:
        """What staff changed: VideoPatch's fields, its `category` resolved to an id (or None)."""
        fields = {("category_id" if name == "category" else name): value for name, value in changes.items()}
        return await self._set(video_id, fields, now) if fields else await self.get(video_id)

    async def mark_pending(self, video_id: ObjectId, now: datetime, *, if_status: str | None = None) -> None:
        """Waiting for a transcode again, with no error (only from `if_status`, when given)."""
        fields = {"status": PENDING, "error": None, "transcode_progress": 0}
        await self._set(video_id, fields, now, {"status": if_status} if if_status else None)

    async def mark_processing(
        self, video_id: ObjectId, percent: int, now: datetime, *, if_status: str | None = None
    ) -> None:
        """Being made (transcoded or published), at `percent`, with no error (only from `if_status`)."""
        fields = {"status": PROCESSING, "error": None, "transcode_progress": percent}
        await self._set(video_id, fields, now, {"status": if_status} if if_status else None)

    async def set_size(
        self, video_id: ObjectId, duration: float, width: int, height: int, now: datetime
    ) -> None:
        """What probing the source found."""
        await self._set(video_id, {"duration": duration, "width": width, "height": height}, now)

    async def set_progress(self, video_id: ObjectId, percent: int, now: datetime) -> None:
        """How far its transcode is (no list changes: the cached lists stay)."""
        await self._set(video_id, {"transcode_progress": percent}, now)

    async def show_growing(
        self, video_id: ObjectId, live_path: str, renditions: Sequence[Rendition], now: datetime
    ) -> None:
        """A video being transcoded plays on its growing ladder (master at `live_path`) from now on."""
        fields: dict[str, Any] = {"playable": True, "live_path": live_path}
        if renditions:
            fields["renditions"] = [r.to_doc() for r in renditions]
        await self._set(video_id, fields, now, {"status": PROCESSING})

    async def set_encoding(self, video_id: ObjectId, fields: Mapping[str, Any], now: datetime) -> None:
        """How its ladder was encoded, under `encoding` (e.g. {"crf.h264": 27, "target_vmaf": 93}): dotted
        names, so each codec's job sets its own without touching the others'."""
        if fields:
            await self._set(video_id, {f"encoding.{name}": value for name, value in fields.items()}, now)

    async def drop_growing(self, video_id: ObjectId, now: datetime) -> None:
        """Its growing ladder went with a transcode that ended without one (a ready video keeps its own)."""
        await self._set(video_id, {"playable": False, "live_path": None}, now, {"status": {"$ne": READY}})

    async def fail(
        self, video_id: ObjectId, error: str, now: datetime, *, if_status_in: Sequence[str] = ()
    ) -> None:
        """Failed, with a readable reason (only from one of `if_status_in`, when given)."""
        fields = {"status": FAILED, "error": error, "transcode_progress": 0}
        await self._set(
            video_id, fields, now, {"status": {"$in": list(if_status_in)}} if if_status_in else None
        )

    async def mark_ready(
        self,
        video_id: ObjectId,
        now: datetime,
        *,
        hls_path: str,
        thumbnail_path: str,
        storyboard_path: str | None,
        renditions: Sequence[Rendition],
        dash_path: str | None = None,
    ) -> Video | None:
        """Its ladder is whole and published: players get it from now on. None when the video is gone."""
        fields = {
            "status": READY,
            "transcode_progress": 100,
            "error": None,
            "playable": True,
            "live_path": None,
            "renditions": [r.to_doc() for r in renditions],
            "hls_path": hls_path,
            "dash_path": dash_path,
            "thumbnail_path": thumbnail_path,
            "storyboard_path": storyboard_path,
            "codecs": ["avc1"],
        }
        return await self._set(video_id, fields, now)

    async def list_codecs(
        self, video_id: ObjectId, hls_path: str, codecs: Sequence[str], now: datetime
    ) -> Video | None:
        """The codecs the ladder at `hls_path` lists now; None when the video is gone or plays another
        ladder (retranscoded meanwhile)."""
        return await self._set(video_id, {"codecs": list(codecs)}, now, {"hls_path": hls_path})

    async def set_subtitles(
        self, video_id: ObjectId, tracks: Sequence[SubtitleTrack], now: datetime
    ) -> Video | None:
        """The video's subtitle tracks, as a whole list; None when the video is gone."""
        return await self._set(video_id, {"subtitles": [t.to_doc() for t in tracks]}, now)

    async def set_chapters(
        self, video_id: ObjectId, chapters: Sequence[Chapter], path: str | None, now: datetime
    ) -> Video | None:
        """The video's chapters and the WebVTT file that lists them; None when the video is gone."""
        fields = {
            "chapters": [{"start": c.start, "title": c.title} for c in chapters],
            "chapters_path": path,
        }
        return await self._set(video_id, fields, now)

    async def add_view(self, video_id: ObjectId) -> None:
        """One more view; the cached lists show it within VIEWS_REFRESH_S seconds."""
        await self.collection.update_one({"_id": video_id}, {"$inc": {"views": 1}})
        cached = self._streamed.get(video_id)
        if cached is not None:  # kept, not dropped: players' reports read it every few seconds
            self._streamed[video_id] = dataclasses.replace(cached, views=cached.views + 1)
        self._views_changed = True

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
