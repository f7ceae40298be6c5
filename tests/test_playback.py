"""Playback sessions over HTTP: what players report, the views it counts, and the stats staff see."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from bson import ObjectId

from models.videos import new_video
from tests.conftest import make_token

RENDITIONS = [
    {"height": 360, "width": 640, "bandwidth": 800_000},
    {"height": 720, "width": 1280, "bandwidth": 3_000_000},
]


@pytest.fixture
def settings_overrides():
    return {"analytics": {"popular_cache_s": 0, "rate_limit_playback": "1000/60", "max_body_kb": 8}}


@pytest.fixture
def add_video(db, clock, services):
    """Insert a ready video as the transcoder leaves it."""

    async def add(title="A video", *, duration=100.0, minutes_ago=0):
        video_id = ObjectId()
        doc = new_video(video_id, title, "", None, f"videos/{video_id}/source", None, clock())
        doc.update(
            status="ready",
            duration=duration,
            width=1280,
            height=720,
            renditions=RENDITIONS,
            hls_path=f"videos/{video_id}/hls-1/master.m3u8",
            created_at=clock() - timedelta(minutes=minutes_ago),
        )
        await db.videos.insert_one(doc)
        services.catalogue.videos.invalidate()
        return str(video_id)

    return add


def session_id() -> str:
    return uuid.uuid4().hex


def heartbeat(seq, position, *, rendition="720p", codec="avc1.64001f", played=None, bitrate=None):
    event = {"seq": seq, "type": "heartbeat", "position": position, "rendition": rendition, "codec": codec}
    if played is not None:
        event["played"] = played
    if bitrate is not None:
        event["bitrate"] = bitrate
    return event


def watch(seconds: int, *, start_seq=0, start_position=0):
    """Heartbeats every 10 s of playback from a position."""
    return [heartbeat(start_seq + n, start_position + 10 * (n + 1), played=10) for n in range(seconds // 10)]


async def report(api, video_id, session, events, token):
    return await api.post(
        f"/api/videos/{video_id}/playback/", {"session": session, "events": events}, token=token
    )


SCRIPT = [
    {"seq": 0, "type": "start", "startup_ms": 850},
    heartbeat(1, 10, played=10, bitrate=3_000_000),
    heartbeat(2, 20, played=10, bitrate=3_000_000),
    {"seq": 3, "type": "rebuffer", "ms": 500, "position": 20},
    {"seq": 4, "type": "switch", "rendition": "360p", "codec": "avc1.4d401e"},
    heartbeat(5, 30, rendition="360p", codec="avc1.4d401e"),  # played: how far the position moved
    {"seq": 6, "type": "error", "code": "media", "detail": "A decode error."},
    {"seq": 7, "type": "end", "position": 30},
]


async def test_retention_counts_every_twentieth_played_through_and_none_skipped_by_a_seek(
    api, add_video, user_token, staff_token
):
    video = await add_video(duration=100.0)
    events = [
        heartbeat(0, 10, played=10),  # 0-10 s: the 1st and 2nd twentieths
        heartbeat(1, 80, played=10),  # a seek, then 70-80 s: the 15th and 16th
        {"seq": 2, "type": "end", "position": 95},  # a jump to the end is not watching it
    ]
    assert (await report(api, video, session_id(), events, user_token)).code == 202
    stats = (await api.get(f"/api/videos/{video}/stats/", token=staff_token)).data
    assert stats["retention"] == [1 if n in (0, 1, 14, 15) else 0 for n in range(20)]


async def test_a_scripted_session_shows_in_the_videos_stats(api, add_video, user_token, staff_token):
    video = await add_video(duration=100.0)
    reply = await report(api, video, session_id(), SCRIPT, user_token)
    assert reply.code == 202
    stats = (await api.get(f"/api/videos/{video}/stats/", token=staff_token)).data
    assert stats["views"] == 1
    assert stats["unique_viewers"] == 1
    assert stats["sessions"] == 1
    assert stats["watch_time_s"] == 30
    assert stats["startup_ms"] == {"p50": 850, "p95": 850}
    assert stats["rebuffer_ratio"] == pytest.approx(0.5 / 30.5, abs=1e-6)
    assert stats["rebuffer_count"] == 1
    assert stats["renditions"] == [
        {"rendition": "720p", "codec": "avc1", "seconds": 20},
        {"rendition": "360p", "codec": "avc1", "seconds": 10},
    ]
    # the first 30 s of 100 s played: the first six twentieths reached, none after
    assert stats["retention"] == [1 if n < 6 else 0 for n in range(20)]
    assert stats["errors"] == [{"code": "media", "count": 1}]
    # 20 s at the reported 3 Mbit/s, then 10 s at the 360p rung's declared 800 kbit/s
    assert stats["bytes_by_codec"] == [{"codec": "avc1", "seconds": 30, "bytes": 7_500_000 + 1_000_000}]


async def test_a_replayed_batch_changes_nothing(api, add_video, user_token, staff_token, db):
    video, session = await add_video(), session_id()
    for _ in range(3):
        assert (await report(api, video, session, SCRIPT, user_token)).code == 202
    # a batch that repeats some events and brings new ones counts only the new ones
    again = [*SCRIPT[-2:], heartbeat(8, 40, played=10)]
    assert (await report(api, video, session, again, user_token)).code == 202
    stats = (await api.get(f"/api/videos/{video}/stats/", token=staff_token)).data
    assert (stats["views"], stats["watch_time_s"], stats["rebuffer_count"]) == (1, 40, 1)
    assert stats["errors"] == [{"code": "media", "count": 1}]
    assert (await api.get(f"/api/videos/{video}/", token=user_token)).data["views"] == 1
    assert await db.playback_sessions.count_documents({}) == 1


async def test_a_view_counts_at_30_seconds_once_per_session(api, add_video, user_token):
    video, session = await add_video(duration=600.0), session_id()
    await report(api, video, session, watch(20), user_token)
    assert (await api.get(f"/api/videos/{video}/", token=user_token)).data["views"] == 0
    await report(api, video, session, watch(10, start_seq=2, start_position=20), user_token)
    assert (await api.get(f"/api/videos/{video}/", token=user_token)).data["views"] == 1
    await report(api, video, session, watch(100, start_seq=3, start_position=30), user_token)
    assert (await api.get(f"/api/videos/{video}/", token=user_token)).data["views"] == 1
    await report(api, video, session_id(), watch(30), user_token)
    assert (await api.get(f"/api/videos/{video}/", token=user_token)).data["views"] == 2


async def test_a_view_counts_at_half_of_a_short_video(api, add_video, user_token):
    video = await add_video(duration=16.0)
    session = session_id()
    await report(api, video, session, [heartbeat(0, 7, played=7)], user_token)
    assert (await api.get(f"/api/videos/{video}/", token=user_token)).data["views"] == 0
    await report(api, video, session, [heartbeat(1, 8, played=1)], user_token)
    assert (await api.get(f"/api/videos/{video}/", token=user_token)).data["views"] == 1


async def test_views_show_in_the_catalogue_list(api, add_video, user_token):
    video = await add_video()
    await report(api, video, session_id(), watch(30), user_token)
    [shown] = (await api.get("/api/videos/", token=user_token)).data
    assert (shown["id"], shown["views"]) == (video, 1)


async def test_popular_orders_by_views_in_the_last_7_days(api, add_video, user_token, clock):
    rising = await add_video("Rising", minutes_ago=30)
    quiet = await add_video("Quiet", minutes_ago=20)
    old_hit = await add_video("Old hit", minutes_ago=10)
    for _ in range(3):
        await report(api, old_hit, session_id(), watch(30), user_token)
    clock.advance(days=8)  # those three views fall out of the week
    for video, views in ((rising, 2), (quiet, 1)):
        for _ in range(views):
            await report(api, video, session_id(), watch(30), user_token)
    popular = await api.get("/api/videos/?ordering=popular", token=user_token)
    assert [v["title"] for v in popular.data] == ["Rising", "Quiet", "Old hit"]
    page = await api.get("/api/videos/?ordering=popular&limit=1&offset=1", token=user_token)
    assert (page.data["count"], [v["title"] for v in page.data["results"]]) == (3, ["Quiet"])
    newest = await api.get("/api/videos/", token=user_token)
    assert [v["title"] for v in newest.data] == ["Old hit", "Quiet", "Rising"]
    bad = await api.get("/api/videos/?ordering=views", token=user_token)
    assert bad.code == 400 and "ordering" in bad.data


async def test_an_unknown_video_is_404_and_a_session_stays_with_its_video(api, add_video, user_token):
    assert (await report(api, str(ObjectId()), session_id(), watch(10), user_token)).code == 404
    first, second, session = await add_video(), await add_video(), session_id()
    assert (await report(api, first, session, watch(10), user_token)).code == 202
    reply = await report(api, second, session, watch(10, start_seq=5), user_token)
    assert reply.code == 409


async def test_another_user_with_the_same_session_id_gets_a_session_of_their_own(
    api, add_video, user_token, services, staff_token
):
    video, session = await add_video(), session_id()
    other = await make_token(services, "other@example.com")
    await report(api, video, session, watch(30), user_token)
    await report(api, video, session, watch(30), other)
    stats = (await api.get(f"/api/videos/{video}/stats/", token=staff_token)).data
    assert (stats["views"], stats["unique_viewers"], stats["sessions"]) == (2, 2, 2)


async def test_no_client_address_is_stored(api, add_video, user_token, db):
    video = await add_video()
    await report(api, video, session_id(), SCRIPT, user_token)
    [doc] = await db.playback_sessions.find({}).to_list(None)
    assert "127.0.0.1" not in repr(doc)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": [{"seq": 0, "type": "end"}]}, "session"),
        ({"session": "short", "events": [{"seq": 0, "type": "end"}]}, "session"),
        ({"session": "../../etc/passwd", "events": [{"seq": 0, "type": "end"}]}, "session"),
        ({"session": "a" * 16, "events": []}, "events"),
        ({"session": "a" * 16, "events": [{"seq": 0, "type": "dance"}]}, "events"),
        ({"session": "a" * 16, "events": [{"seq": -1, "type": "end"}]}, "events"),
        ({"session": "a" * 16, "events": [{"seq": 0, "type": "start", "startup_ms": 10**9}]}, "events"),
        ({"session": "a" * 16, "events": [{"seq": 0, "type": "heartbeat", "position": -3}]}, "events"),
        ({"session": "a" * 16, "events": [{"seq": 0, "type": "heartbeat", "position": "10"}]}, "events"),
        ({"session": "a" * 16, "events": [heartbeat(0, 10, rendition="$where")]}, "events"),
        ({"session": "a" * 16, "events": [heartbeat(0, 10, played=3600)]}, "events"),
        ({"session": "a" * 16, "events": [{"seq": 0, "type": "error", "code": "a.b"}]}, "events"),
        ({"session": "a" * 16, "events": [{"seq": n, "type": "end"} for n in range(51)]}, "events"),
    ],
)
async def test_a_bad_report_is_a_field_error(api, add_video, user_token, body, field):
    video = await add_video()
    reply = await api.post(f"/api/videos/{video}/playback/", body, token=user_token)
    assert reply.code == 400
    assert field in reply.data


async def test_a_report_that_is_not_json_or_too_big_is_refused(api, add_video, user_token):
    video = await add_video()
    path = f"/api/videos/{video}/playback/"
    reply = await api.post(path, body="{", headers={"Content-Type": "application/json"}, token=user_token)
    assert reply.code == 400
    big = {
        "session": "a" * 16,
        "events": [{"seq": 0, "type": "error", "code": "x", "detail": "y" * 500}] * 20,
    }
    reply = await api.post(path, big, token=user_token)
    assert reply.code == 413
    assert "at most 8192 bytes" in reply.data["detail"]


async def test_playback_needs_a_verified_user_and_stats_need_staff(api, add_video, user_token):
    video = await add_video()
    assert (await report(api, video, session_id(), watch(10), None)).code == 401
    assert (await api.get(f"/api/videos/{video}/stats/", token=user_token)).code == 403
    assert (await api.get("/api/admin/stats/", token=user_token)).code == 403


async def test_stats_days_is_bounded(api, add_video, staff_token):
    video = await add_video()
    for days in ("0", "366", "x"):
        reply = await api.get(f"/api/videos/{video}/stats/?days={days}", token=staff_token)
        assert reply.code == 400 and "days" in reply.data


async def test_stats_count_only_sessions_of_the_period(api, add_video, user_token, staff_token, clock):
    video = await add_video()
    await report(api, video, session_id(), watch(30), user_token)
    clock.advance(days=3)
    await report(api, video, session_id(), watch(40), user_token)
    last_two = (await api.get(f"/api/videos/{video}/stats/?days=2", token=staff_token)).data
    assert (last_two["views"], last_two["watch_time_s"]) == (1, 40)
    everything = (await api.get(f"/api/videos/{video}/stats/", token=staff_token)).data
    assert (everything["views"], everything["watch_time_s"]) == (2, 70)


async def test_the_admin_overview_has_totals_and_top_videos(api, add_video, user_token, staff_token):
    hit, other = await add_video("Hit"), await add_video("Other")
    for _ in range(2):
        await report(api, hit, session_id(), watch(30), user_token)
    await report(api, other, session_id(), watch(20), user_token)
    overview = (await api.get("/api/admin/stats/", token=staff_token)).data
    assert overview["totals"] == {"views": 2, "watch_time_s": 80, "sessions": 3, "videos_watched": 2}
    assert [(v["title"], v["views"], v["total_views"]) for v in overview["top_videos"]] == [
        ("Hit", 2, 2),
        ("Other", 0, 0),
    ]


class TestRateLimit:
    @pytest.fixture
    def settings_overrides(self):
        return {"analytics": {"rate_limit_playback": "3/60"}}

    async def test_the_fourth_report_in_a_minute_gets_429(self, api, add_video, user_token, clock):
        video, session = await add_video(), session_id()
        for n in range(3):
            assert (await report(api, video, session, [heartbeat(n, 10 * n)], user_token)).code == 202
        reply = await report(api, video, session, [heartbeat(3, 30)], user_token)
        assert reply.code == 429
        assert 1 <= int(reply.headers["Retry-After"]) <= 60
        clock.advance(seconds=61)
        assert (await report(api, video, session, [heartbeat(3, 30)], user_token)).code == 202


class TestMetrics:
    @pytest.fixture
    def settings_overrides(self):
        return {"metrics": {"token": "metrics-token"}}

    async def test_prometheus_shows_startup_rebuffers_and_errors_by_rendition(
        self, api, add_video, user_token
    ):
        video = await add_video()
        await report(api, video, session_id(), SCRIPT, user_token)
        text = (await api.get("/metrics", headers={"Authorization": "Bearer metrics-token"})).body.decode()
        assert "videoflix_playback_startup_seconds_count 1.0" in text
        assert 'videoflix_playback_startup_seconds_bucket{le="1.0"} 1.0' in text
        assert 'videoflix_playback_rebuffers_total{rendition="720p"} 1.0' in text
        assert 'videoflix_playback_rebuffer_seconds_total{rendition="720p"} 0.5' in text
        assert 'videoflix_playback_errors_total{rendition="360p"} 1.0' in text


async def test_deleting_a_video_removes_its_sessions_and_day_counts(
    api, add_video, user_token, staff_token, db
):
    video = await add_video()
    await report(api, video, session_id(), watch(30), user_token)
    assert (await api.delete(f"/api/videos/{video}/", token=staff_token)).code == 204
    assert await db.playback_sessions.count_documents({}) == 0
    assert await db.video_days.count_documents({}) == 0


class TestViewsHook:
    """The AV1 planner hears of every counted view, with the video's views in the last 7 days."""

    heard: list[tuple[str, int]]

    @pytest.fixture
    def services(self, settings, db, clock, hasher, run_types, io_loop):
        from services.container import build_services

        self.heard = []

        async def on_views(video_id, views_7d):
            self.heard.append((str(video_id), views_7d))

        built = build_services(
            settings, db, clock=clock, hasher=hasher, run_types=run_types, node="test-node", on_views=on_views
        )
        io_loop.run_sync(built.start)
        yield built
        io_loop.run_sync(built.stop)

    async def test_every_counted_view_tells_the_planner_the_weeks_views(
        self, api, add_video, user_token, clock
    ):
        video = await add_video()
        await report(api, video, session_id(), watch(30), user_token)
        clock.advance(days=8)
        for _ in range(2):
            await report(api, video, session_id(), watch(40), user_token)
        assert self.heard == [(video, 1), (video, 1), (video, 2)]


async def test_a_session_cannot_grow_its_document_with_made_up_names(api, add_video, user_token, staff_token):
    video, session = await add_video(), session_id()
    errors = [{"seq": n, "type": "error", "code": f"code{n}"} for n in range(30)]
    await report(api, video, session, errors, user_token)
    odd = [heartbeat(30, 10, rendition="4320p", codec="zzzz.1", played=10)]
    await report(api, video, session, odd, user_token)
    stats = (await api.get(f"/api/videos/{video}/stats/", token=staff_token)).data
    assert len(stats["errors"]) == 21
    assert {"code": "other", "count": 10} in stats["errors"]
    assert stats["renditions"] == [{"rendition": "other", "codec": "other", "seconds": 10}]
