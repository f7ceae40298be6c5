"""Playback analytics: what players report (sessions of events), views, stats for staff, popularity.

A player reports a session in batches: `{session, events: [{seq, type, ...}]}`. Each session is one
document of aggregates (models/playback.py); a batch is folded into it in one atomic update, guarded by
the session's last event number, so a replayed batch (or event) changes nothing. A session counts one
view once `analytics.view_min_s` seconds or `analytics.view_min_share` of the video are watched; the
view goes on the video's counter and on the video's day, which the catalogue's `?ordering=popular`
reads (never the sessions). No client address is stored.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from cachetools import LRUCache

from core.clock import Clock
from core.config import AnalyticsSettings
from core.errors import Conflict
from core.metrics import Metrics
from models.playback import RETENTION_BUCKETS, RawEvents, Session, Sessions, VideoDays, merge_counts
from models.users import User
from models.videos import Video, Videos
from services.catalogue import CatalogueService
from services.playback import Fold, PlaybackReport, fold
from services.throttle import Throttle

log = logging.getLogger("videoflix.analytics")

POPULAR_DAYS = 7
RECENT_SESSIONS = 10_000  # sessions whose last state this process keeps
TOP_VIDEOS = 10


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# Called on every counted view with the video's id and its views in the last 7 days: the AV1 planner's
# `on_views` (transcode.av1: popular queues the AV1 follow-up job past transcode.av1_min_views;
# idempotent).
ViewsHook = Callable[[ObjectId, int], Awaitable[Any]]


class WeeklyViews:
    """Views per video in the last 7 days, from the per-day counts, cached for `cache_s` seconds: what
    `?ordering=popular` sorts by (the catalogue calls it)."""

    def __init__(self, days: VideoDays, clock: Clock, cache_s: float) -> None:
        self.days = days
        self.clock = clock
        self.cache_s = cache_s
        self._cached: tuple[float, dict[ObjectId, float]] | None = None

    async def __call__(self) -> Mapping[ObjectId, float]:
        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] < self.cache_s:
            return cached[1]
        totals = await self.days.totals_by_video(self.clock(), POPULAR_DAYS)
        views = {video_id: row["views"] for video_id, row in totals.items()}
        self._cached = (time.monotonic(), views)
        return views

    def forget(self) -> None:
        self._cached = None


class AnalyticsService:
    """Ingest of playback reports, views, stats and popularity."""

    def __init__(
        self,
        sessions: Sessions,
        raw_events: RawEvents,
        days: VideoDays,
        videos: Videos,
        catalogue: CatalogueService,
        metrics: Metrics,
        settings: AnalyticsSettings,
        clock: Clock,
        *,
        on_views: ViewsHook | None = None,
        throttle: Throttle | None = None,
        weekly: WeeklyViews | None = None,
    ) -> None:
        self.sessions = sessions
        self.raw_events = raw_events
        self.days = days
        self.videos = videos
        self.catalogue = catalogue
        self.metrics = metrics
        self.settings = settings
        self.clock = clock
        self.on_views = on_views
        self.throttle = throttle
        self._recent: LRUCache[str, Session] = LRUCache(RECENT_SESSIONS)
        self.weekly = weekly or WeeklyViews(days, clock, settings.popular_cache_s)

    # --- ingest -------------------------------------------------------------------------------

    async def admit(self, user: User) -> None:
        """Count a report against the user's `analytics.rate_limit_playback` (Throttled when over)."""
        if self.throttle is not None:
            await self.throttle.check("playback", self.settings.rate_limit_playback, [f"user:{user.id}"])

    async def report(self, user: User, video_id: str, report: PlaybackReport) -> None:
        """Fold a batch of events into its session; a replayed batch changes nothing."""
        video = await self.catalogue.visible_video_cached(user, video_id)
        now = self.clock()
        session_id = f"{user.id}:{report.session}"
        # The session as this process last wrote it: one write per batch when no other process wrote
        # it since (the compare-and-set on max_seq tells); else it is read again.
        session = self._recent.get(session_id) or await self.sessions.open(session_id, user.id, video.id, now)
        for _ in range(5):
            if session.video_id != video.id:
                raise Conflict("This playback session belongs to another video.")
            folded = fold(session, report.events, video, now)
            if folded is None:
                return
            updated = await self.sessions.apply(session, folded.change)
            if updated is not None:
                break
            session = await self.sessions.open(session_id, user.id, video.id, now)
        else:
            raise Conflict("The playback session changed meanwhile; send the batch again.")
        self._recent[session_id] = updated
        self.observe(video, folded)
        new_session = session.max_seq < 0
        if folded.played_s or new_session:
            await self.days.add(video.id, now, watch_s=folded.played_s, sessions=int(new_session))
        fresh = [e.model_dump() for e in report.events if e.seq > session.max_seq]
        expires = now + timedelta(days=self.settings.raw_events_days)
        await self.raw_events.add(session_id, [{**e, "at": now} for e in fresh], expires)
        if not updated.viewed and self.counts_a_view(updated.watched_s, video.duration):
            self._recent.pop(session_id, None)  # its `viewed` moves on in the database
            await self.count_view(updated, video, now)

    def counts_a_view(self, watched_s: float, duration: float | None) -> bool:
        """≥ view_min_s seconds watched, or ≥ view_min_share of the video."""
        if watched_s >= self.settings.view_min_s:
            return True
        return bool(duration) and watched_s >= self.settings.view_min_share * (duration or 0)

    async def count_view(self, session: Session, video: Video, now: datetime) -> None:
        """Count the session's view once: on the video and its day; then tell the views hook (the AV1
        planner) the video's views in 7 days."""
        if not await self.sessions.mark_viewed(session.id, now):
            return
        await self.videos.add_view(video.id)
        await self.days.add(video.id, now, views=1)
        if self.on_views is not None:
            try:
                await self.on_views(video.id, await self.days.views_of(video.id, now, POPULAR_DAYS))
            except Exception:  # the view is counted whatever the planner thinks of it
                log.warning("the views hook failed for video %s", video.id, exc_info=True)

    def observe(self, video: Video, folded: Fold) -> None:
        """The Prometheus side: startup time, stalls and errors by rendition (only the video's own
        heights name a series, so a client cannot make new ones)."""
        heights = {f"{rung.height}p" for rung in video.renditions}

        def label(rendition: str | None) -> str:
            return rendition if rendition in heights else "other"

        if folded.startup_ms is not None:
            self.metrics.playback_startup.observe(folded.startup_ms / 1000)
        for rendition, ms in folded.rebuffers:
            self.metrics.playback_rebuffers.labels(label(rendition)).inc()
            self.metrics.playback_rebuffer_seconds.labels(label(rendition)).inc(ms / 1000)
        for rendition in folded.errors:
            self.metrics.playback_errors.labels(label(rendition)).inc()

    # --- for staff ----------------------------------------------------------------------------

    async def video_stats(self, user: User, video_id: str, days: int) -> dict[str, Any]:
        """One video's audience over the last `days` days, from its sessions."""
        video = await self.catalogue.visible_video(user, video_id)
        now = self.clock()
        rows = await self.sessions.for_video(video.id, now - timedelta(days=days))
        viewed = [row for row in rows if row.get("viewed")]
        watch_s = sum(row.get("watched_s", 0) for row in rows)
        rebuffer_s = sum(row.get("rebuffer_ms", 0) for row in rows) / 1000
        startups = [row["startup_ms"] for row in rows if row.get("startup_ms") is not None]
        p50, p95 = percentile(startups, 50), percentile(startups, 95)
        renditions = rendition_rows(rows)
        reached = [0] * RETENTION_BUCKETS
        for row in rows:
            for bucket in row.get("buckets") or ():
                if 0 <= bucket < RETENTION_BUCKETS:
                    reached[bucket] += 1
        codes = merge_counts(rows, "error_codes")
        bytes_by_codec = merge_counts(rows, "bytes")
        seconds_by_codec: dict[str, float] = defaultdict(float)
        for row in renditions:
            seconds_by_codec[row["codec"]] += row["seconds"]
        return {
            "days": days,
            "views": len(viewed),
            "unique_viewers": len({row["user_id"] for row in viewed}),
            "sessions": len(rows),
            "watch_time_s": round(watch_s, 3),
            "startup_ms": {"p50": p50, "p95": p95},
            "rebuffer_ratio": round(rebuffer_s / (watch_s + rebuffer_s), 6) if watch_s + rebuffer_s else 0,
            "rebuffer_count": int(sum(row.get("rebuffer_count", 0) for row in rows)),
            "renditions": renditions,
            "retention": [round(n / len(rows), 4) if rows else 0 for n in reached],
            "errors": sorted(
                ({"code": code, "count": int(n)} for code, n in codes.items()), key=lambda e: -e["count"]
            ),
            "bytes_by_codec": sorted(
                (
                    {"codec": codec, "seconds": round(seconds_by_codec.get(codec, 0), 3), "bytes": int(n)}
                    for codec, n in bytes_by_codec.items()
                ),
                key=lambda e: -e["bytes"],
            ),
        }

    async def overview(self, days: int) -> dict[str, Any]:
        """Totals over the last `days` days and the top videos by views, from the per-day counts."""
        now = self.clock()
        by_video = await self.days.totals_by_video(now, days)
        ranked = sorted(by_video, key=lambda v: (-by_video[v]["views"], -by_video[v]["watch_s"]))
        top_ids = ranked[:TOP_VIDEOS]
        found = await self.videos.by_ids(top_ids)
        return {
            "days": days,
            "totals": {
                "views": int(sum(row["views"] for row in by_video.values())),
                "watch_time_s": round(sum(row["watch_s"] for row in by_video.values()), 3),
                "sessions": int(sum(row["sessions"] for row in by_video.values())),
                "videos_watched": sum(1 for row in by_video.values() if row["sessions"] or row["views"]),
            },
            "top_videos": [
                {
                    "id": str(video_id),
                    "title": found[video_id].title,
                    "views": int(by_video[video_id]["views"]),
                    "watch_time_s": round(by_video[video_id]["watch_s"], 3),
                    "total_views": found[video_id].views,
                }
                for video_id in top_ids
                if video_id in found
            ],
        }

    # --- popularity and clean-up ----------------------------------------------------------------

    async def forget_user(self, user_id: str) -> None:
        """Every playback session and raw event of a deleted user."""
        count = await self.sessions.delete_for_user(user_id)
        self._recent.clear()
        await self.raw_events.delete_for_sessions(f"{user_id}:")
        log.info("user %s deleted: %d playback session(s) removed", user_id, count)


def rendition_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Seconds watched per rendition and codec, most watched first."""
    seconds: dict[tuple[str, str], float] = defaultdict(float)
    for row in rows:
        for rendition, codecs in (row.get("renditions") or {}).items():
            for codec, value in codecs.items():
                seconds[(rendition, codec)] += value
    return [
        {"rendition": rendition, "codec": codec, "seconds": round(value, 3)}
        for (rendition, codec), value in sorted(seconds.items(), key=lambda item: -item[1])
    ]
