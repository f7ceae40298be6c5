"""Playback sessions, per-video stats and the admin overview: what viewers experienced, for staff."""

from __future__ import annotations

from pydantic import BaseModel, Field

from core.validation import Query
from handlers.base import APIError, BaseHandler, staff_only, user_only
from handlers.openapi import api
from handlers.replies import Detail, Number
from services.analytics import AnalyticsService
from services.playback import PlaybackReport

MAX_DAYS = 365


class DaysQuery(Query):
    days: int = Field(7, ge=1, le=MAX_DAYS, description="The last this many days (today included).")


class StatsDaysQuery(Query):
    days: int = Field(30, ge=1, le=MAX_DAYS, description="Sessions started in the last this many days.")


class Startup(BaseModel):
    p50: Number | None = Field(description="Median milliseconds from play to the first frame.")
    p95: Number | None


class RenditionSeconds(BaseModel):
    rendition: str
    codec: str = Field(description='The codec family, e.g. "avc1" or "av01".')
    seconds: Number


class ErrorCount(BaseModel):
    code: str
    count: int


class CodecBytes(BaseModel):
    codec: str
    seconds: Number
    bytes: int = Field(
        description="An estimate: seconds x the bitrate players reported (else the rendition's "
        "bandwidth) / 8."
    )


class VideoStats(BaseModel):
    days: int
    views: int = Field(description="Sessions that reached 30 s or half the video.")
    unique_viewers: int = Field(description="Users with a counted view.")
    sessions: int
    watch_time_s: Number
    startup_ms: Startup
    rebuffer_ratio: Number = Field(description="Stalled seconds / (watched + stalled seconds).")
    rebuffer_count: int
    renditions: list[RenditionSeconds]
    retention: list[Number] = Field(
        description="20 buckets: the share of sessions that played some of each twentieth of the video."
    )
    errors: list[ErrorCount]
    bytes_by_codec: list[CodecBytes]


class Totals(BaseModel):
    views: int
    watch_time_s: Number
    sessions: int
    videos_watched: int


class TopVideo(BaseModel):
    id: str
    title: str
    views: int = Field(description="Views in the period.")
    watch_time_s: Number
    total_views: int = Field(description="Views of all time.")


class Overview(BaseModel):
    days: int
    totals: Totals
    top_videos: list[TopVideo]


class AnalyticsHandler(BaseHandler):
    @property
    def analytics(self) -> AnalyticsService:
        return self.services.analytics


class PlaybackHandler(AnalyticsHandler):
    @api(
        "Report a playback session's events (idempotent by session and seq)",
        description="Events: `start` (startup_ms), `heartbeat` (position, rendition, codec, bitrate, "
        "played), `rebuffer` (ms), `switch`, `error` (code, detail), `end`. A batch whose events were "
        "seen before changes nothing.",
        body=PlaybackReport,
        responses={202: Detail},
        errors=[409, 413],
        throttled=True,
    )
    @user_only
    async def post(self, video_id: str) -> None:
        await self.analytics.admit(self.user)
        limit = self.config.analytics.max_body_kb * 1024
        if len(self.request.body) > limit:
            raise APIError(413, f"A playback report may hold at most {limit} bytes.")
        report = self.parse(PlaybackReport)
        await self.analytics.report(self.user, video_id, report)
        self.send_json({"detail": "Accepted."}, status=202)


class VideoStatsHandler(AnalyticsHandler):
    @api(
        "A video's audience: views, watch time, startup, rebuffering, retention",
        query=StatsDaysQuery,
        responses={200: VideoStats},
    )
    @staff_only
    async def get(self, video_id: str) -> None:
        days = self.query(StatsDaysQuery).days
        self.send_json(await self.analytics.video_stats(self.user, video_id, days))


class AdminStatsHandler(AnalyticsHandler):
    @api("Totals and the most viewed videos", query=DaysQuery, responses={200: Overview})
    @staff_only
    async def get(self) -> None:
        self.send_json(await self.analytics.overview(self.query(DaysQuery).days))


routes = [
    (r"/api/videos/([^/]+)/playback/?", PlaybackHandler),
    (r"/api/videos/([^/]+)/stats/?", VideoStatsHandler),
    (r"/api/admin/stats/?", AdminStatsHandler),
]
