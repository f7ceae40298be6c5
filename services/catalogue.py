"""The catalogue service: categories, videos, uploads and watch progress, with their rules."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bson import ObjectId

from core.clock import Clock, isoformat
from core.config import MediaSettings
from core.errors import Conflict, InvalidField, NotFound
from models import categories as category_docs
from models.categories import Categories, SlugTaken, slugify
from models.db import object_id
from models.progress import Progress
from models.users import User
from models.videos import READY, Video, VideoQuery, Videos, new_video
from services.av1 import av1_key
from services.grants import Grants, StreamUrls
from services.jobs import JobQueue
from services.media import Media
from services.publishing import publish_key
from services.transcoding import TRANSCODE, source_limits, transcode_key
from transcode.probe import NotAVideo, OverLimit, probe

log = logging.getLogger("videoflix.catalogue")

SLUG_TAKEN = "category with this slug already exists."
NEWEST, POPULAR = "newest", "popular"
ORDERINGS = (NEWEST, POPULAR)
# Views per video in the last 7 days (services/analytics.py), for ?ordering=popular.
Popularity = Callable[[], Awaitable[Mapping[ObjectId, float]]]
# What else goes with a deleted video (My list rows, playback sessions): each called with its id.
VideoCleanup = Callable[[ObjectId], Awaitable[None]]
NO_SUCH_CATEGORY = "Select a valid choice. That choice is not one of the available choices."


@dataclass(frozen=True)
class VideoView:
    """A video as one user is shown it: the video, the user's saved position in it, and its stream URLs
    under the user's grant (the reply model, handlers/replies.py `Video.of`, shapes its JSON)."""

    video: Video
    watch_position: float
    urls: StreamUrls


class CatalogueService:
    """What handlers ask of the catalogue."""

    def __init__(
        self,
        categories: Categories,
        videos: Videos,
        progress: Progress,
        media: Media,
        grants: Grants,
        queue: JobQueue,
        clock: Clock,
        *,
        playable_for_everyone: bool = False,
        media_settings: MediaSettings | None = None,
        popularity: Popularity | None = None,
        video_cleanups: Sequence[VideoCleanup] = (),
    ) -> None:
        self.categories = categories
        self.videos = videos
        self.progress = progress
        self.media = media
        self.grants = grants
        self.queue = queue
        self.clock = clock
        # Users see ready videos, and (if so configured) those that can be watched while they transcode.
        self.playable_for_everyone = playable_for_everyone
        self.media_settings = media_settings or MediaSettings()  # the limits an upload must keep
        self.popularity = popularity
        self.video_cleanups = tuple(video_cleanups)

    # --- categories ---------------------------------------------------------------------------

    async def list_categories(self) -> list[dict[str, Any]]:
        return [category_docs.to_api(doc) for doc in await self.categories.all()]

    async def create_category(self, name: str, slug: str | None, description: str) -> dict[str, Any]:
        """A new category; without a slug, one made from the name (or, for a name with no letter or
        digit that has an ASCII form, such as "日本語" or "!!!", from the new id)."""
        slug = slug or slugify(name) or None
        try:
            doc = await self.categories.create(name, slug, description, self.clock())
        except SlugTaken as err:
            raise InvalidField("slug", SLUG_TAKEN) from err
        return category_docs.to_api(doc)

    async def update_category(self, category_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        oid = object_id(category_id)
        if oid is None or await self.categories.get(oid) is None:
            raise NotFound()
        try:
            doc = await self.categories.update(oid, fields) if fields else await self.categories.get(oid)
        except SlugTaken as err:
            raise InvalidField("slug", SLUG_TAKEN) from err
        if doc is None:
            raise NotFound()
        return category_docs.to_api(doc)

    async def delete_category(self, category_id: str) -> None:
        """Delete an unused category; one that videos still use answers 409 (nothing is orphaned)."""
        oid = object_id(category_id)
        if oid is None or await self.categories.get(oid) is None:
            raise NotFound()
        used = await self.videos.count_in_category(oid)
        if used:
            raise Conflict(f"The category is used by {used} video(s); move or delete them first.")
        await self.categories.delete(oid)

    async def category_by_id_or_slug(self, value: str, field: str) -> ObjectId:
        doc = await self.categories.find(value)
        if doc is None:
            raise InvalidField(field, NO_SUCH_CATEGORY)
        return ObjectId(doc["_id"])

    # --- videos -------------------------------------------------------------------------------

    async def serialize(self, user: User, videos: list[Video]) -> list[VideoView]:
        """Videos as this user is shown them: one query for every watch position."""
        positions = await self.progress.positions(user.id, (video.id for video in videos))
        return [
            VideoView(video, positions.get(video.id, 0), self.grants.urls(video, user)) for video in videos
        ]

    async def list_videos(
        self,
        user: User,
        *,
        status: str | None,
        category: str | None,
        search: tuple[str, ...],
        offset: int,
        limit: int | None,
        ordering: str = NEWEST,
    ) -> tuple[list[VideoView], int]:
        """A page of videos, newest first (or by views in the last 7 days): only ready ones for users
        (and playable ones, if configured), any (or `status`) for staff."""
        statuses: tuple[str, ...] | None = (READY,)
        if user.is_staff:
            statuses = (status,) if status else None
        category_id = await self.category_by_id_or_slug(category, "category") if category else None
        playable_too = statuses == (READY,) and self.playable_for_everyone
        query = VideoQuery(statuses, category_id, search, playable_too)
        if ordering == POPULAR and self.popularity is not None:
            # the whole (cached) list, re-ordered by the cached ranking: no session is read here
            everything, count = await self.videos.page(query, 0, None)
            views = await self.popularity()
            ranked = sorted(everything, key=lambda video: -views.get(video.id, 0))  # stable: newest first
            end = None if limit is None else offset + limit
            return await self.serialize(user, ranked[offset:end]), count
        videos, count = await self.videos.page(query, offset, limit)
        return await self.serialize(user, videos), count

    def may_see(self, user: User, video: Video) -> bool:
        """Staff see every video; users ready ones, and playable ones if so configured."""
        if user.is_staff or video.status == READY:
            return True
        return self.playable_for_everyone and video.playable_path is not None

    async def visible_video(self, user: User, video_id: str) -> Video:
        """A video this user may see, else 404."""
        video = await self.videos.get(video_id)
        if video is None or not self.may_see(user, video):
            raise NotFound()
        return video

    async def visible_video_cached(self, user: User, video_id: str) -> Video:
        """As `visible_video`, from the cache the stream handlers use: for paths that players call every
        few seconds (playback reports), which must not query the videos on each call."""
        video = await self.videos.for_streaming(video_id)
        if video is None or not self.may_see(user, video):
            raise NotFound()
        return video

    async def video_for(self, user: User, video_id: str) -> VideoView:
        [shown] = await self.serialize(user, [await self.visible_video(user, video_id)])
        return shown

    async def add_upload(
        self,
        user: User,
        video_id: ObjectId,
        path: Path,
        title: str,
        description: str,
        category: str | None,
        *,
        stored: bool = False,
    ) -> VideoView:
        """Register a streamed upload: probe it, then create the video (pending) and its job. `stored`: the
        source is in the store already (a resumable upload to S3); `path` is only a copy to probe."""
        category_id = await self.category_by_id_or_slug(category, "category") if category else None
        try:
            info = await probe(path, limits=source_limits(self.media_settings))
        except NotAVideo as err:
            raise InvalidField("file", f"{err} Upload a video file.") from err
        except OverLimit as err:
            raise InvalidField("file", str(err)) from err
        if info.still:
            raise InvalidField("file", "The file is a still image, not a video. Upload a video file.")
        source = await self.media.keep_source(video_id, path, stored=stored)
        doc = new_video(
            video_id,
            title,
            description,
            category_id,
            source,
            user.id,
            self.clock(),
            duration=round(info.duration, 3),
            width=info.width,
            height=info.height,
        )
        video = await self.videos.insert(doc)
        await self.queue.enqueue(TRANSCODE, {"video_id": video_id}, key=transcode_key(video_id))
        log.info(
            "video %s uploaded by %s (%dx%d, %.1fs)",
            video_id,
            user.id,
            info.width,
            info.height,
            info.duration,
        )
        [shown] = await self.serialize(user, [video])
        return shown

    async def update_video(self, user: User, video_id: str, fields: dict[str, Any]) -> VideoView:
        """Change what staff set: title, description, category (an id or slug; empty: none)."""
        video = await self.videos.get(video_id)
        if video is None:
            raise NotFound()
        changes = dict(fields)
        if "category" in changes:
            category = changes["category"]
            changes["category"] = (
                await self.category_by_id_or_slug(category, "category") if category else None
            )
        edited = await self.videos.edit(video.id, changes, self.clock())
        if edited is None:
            raise NotFound()
        [shown] = await self.serialize(user, [edited])
        return shown

    async def delete_video(self, video_id: str) -> None:
        """Remove the video, its job (stopping its FFmpeg), its progress rows and every file."""
        video = await self.videos.get(video_id)
        if video is None:
            raise NotFound()
        await self.queue.forget(transcode_key(video.id))  # its FFmpeg stops before its files go
        await self.queue.forget(publish_key(video.id))
        await self.queue.forget(av1_key(video.id))
        await self.videos.delete(video.id)
        await self.progress.delete_for_video(video.id)
        for cleanup in self.video_cleanups:
            await cleanup(video.id)
        await self.media.delete_video(video.id)
        log.info("video %s deleted", video.id)

    async def retranscode(self, video_id: str) -> None:
        """Queue a new transcode; a ready video stays playable until the new ladder is whole."""
        video = await self.videos.get(video_id)
        if video is None:
            raise NotFound()
        if not video.source:
            raise Conflict("The video has no source file to transcode.")
        if video.status != READY:
            await self.videos.mark_pending(video.id, self.clock())
        await self.queue.forget(av1_key(video.id))  # its ladder goes; the new one gets its own AV1 job
        await self.queue.enqueue(TRANSCODE, {"video_id": video.id}, key=transcode_key(video.id))

    # --- watch progress -----------------------------------------------------------------------

    async def save_progress(self, user: User, video_id: str, position: float) -> dict[str, Any]:
        video = await self.visible_video(user, video_id)
        duration = video.duration
        clamped = min(position, duration) if duration else position
        row = await self.progress.save(user.id, video.id, clamped, duration, self.clock())
        return progress_to_api(row, duration)

    async def get_progress(self, user: User, video_id: str) -> dict[str, Any]:
        video = await self.visible_video(user, video_id)
        return progress_to_api(await self.progress.get(user.id, video.id), video.duration)

    async def continue_watching(self, user: User, limit: int) -> list[VideoView]:
        """Videos begun and not finished, most recently watched first (those the user can watch)."""
        rows = await self.progress.started(user.id, limit)
        found = await self.videos.by_ids([row["video_id"] for row in rows])
        videos = [found[row["video_id"]] for row in rows if row["video_id"] in found]
        return await self.serialize(user, [video for video in videos if self.watchable(user, video)])

    def watchable(self, user: User, video: Video) -> bool:
        """Ready, or playable while it is transcoded and visible to this user."""
        if video.status == READY:
            return True
        return video.playable_path is not None and (user.is_staff or self.playable_for_everyone)


def progress_to_api(row: dict[str, Any] | None, duration: float | None) -> dict[str, Any]:
    """{position, duration, updated_at}: position 0 and no time when never watched."""
    return {
        "position": row["position"] if row else 0,
        "duration": duration,
        "updated_at": isoformat(row["updated_at"]) if row else None,
    }
