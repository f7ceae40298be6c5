"""A video can be watched while it is transcoded: who sees it, and how its growing ladder is served."""

from __future__ import annotations

from pathlib import Path

import pytest
from bson import ObjectId

from models.videos import new_video

EVENT_PLAYLIST = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-TARGETDURATION:4\n"


@pytest.fixture
def growing_video(db, clock, settings, services):
    """A processing video whose first segments are on disk, as the transcode job leaves it mid-way."""

    async def add(title: str = "Live") -> str:
        video_id = ObjectId()
        live = Path(settings.media.root) / "videos" / str(video_id) / ".hls-tmp-1-abc"
        (live / "360p").mkdir(parents=True)
        (live / "master.m3u8").write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=900000\n360p/index.m3u8\n")
        (live / "360p" / "index.m3u8").write_text(EVENT_PLAYLIST + "#EXTINF:4.0,\nseg_00000.ts\n")
        (live / "360p" / "seg_00000.ts").write_bytes(b"\x47" * 188 * 10)
        doc = new_video(video_id, title, "", None, f"videos/{video_id}/source", None, clock())
        doc.update(
            status="processing",
            playable=True,
            live_path=f"videos/{video_id}/.hls-tmp-1-abc/master.m3u8",
            renditions=[{"height": 360, "width": 640, "bandwidth": 900000}],
            transcode_progress=12,
        )
        await db.videos.insert_one(doc)
        services.catalogue.videos.invalidate()
        return str(video_id)

    return add


async def test_staff_see_a_playable_processing_video_with_its_stream_urls(api, staff_token, growing_video):
    video_id = await growing_video()
    video = (await api.get(f"/api/videos/{video_id}/", token=staff_token)).data
    assert (video["status"], video["playable"], video["transcode_progress"]) == ("processing", True, 12)
    assert video["hls_url"].endswith("/master.m3u8")
    assert video["renditions"][0]["url"].endswith("/360p/index.m3u8")
    assert (
        video["thumbnail_url"] is None and video["storyboard_url"] is None
    )  # they come with the whole ladder


async def test_by_default_users_see_only_ready_videos(api, user_token, growing_video):
    video_id = await growing_video()
    assert (await api.get(f"/api/videos/{video_id}/", token=user_token)).code == 404
    assert (await api.get("/api/videos/", token=user_token)).data == []


async def test_the_growing_playlist_is_served_uncached_and_its_segments_as_usual(
    api, staff_token, growing_video
):
    video_id = await growing_video()
    video = (await api.get(f"/api/videos/{video_id}/", token=staff_token)).data
    playlist = await api.get(video["renditions"][0]["url"])
    assert playlist.code == 200
    assert b"#EXT-X-PLAYLIST-TYPE:EVENT" in playlist.body and b"#EXT-X-ENDLIST" not in playlist.body
    assert playlist.headers["Cache-Control"] == "private, no-cache"
    segment = await api.get(video["hls_url"].rsplit("/", 1)[0] + "/360p/seg_00000.ts")
    assert segment.code == 200
    assert "immutable" in segment.headers["Cache-Control"]


async def test_a_video_that_is_not_playable_yet_has_no_stream_urls(api, staff_token, db, growing_video):
    video_id = await growing_video()
    await db.videos.update_one({"_id": ObjectId(video_id)}, {"$set": {"playable": False}})
    video = (await api.get(f"/api/videos/{video_id}/", token=staff_token)).data
    assert (video["playable"], video["hls_url"], video["renditions"]) == (False, None, [])


class TestForEveryone:
    @pytest.fixture
    def settings_overrides(self):
        return {"catalogue": {"playable_while_processing": "everyone"}}

    async def test_users_see_and_play_it_too_when_so_configured(
        self, api, user_token, growing_video, add_ready
    ):
        video_id = await growing_video()
        await add_ready()
        listed = (await api.get("/api/videos/", token=user_token)).data
        assert [v["title"] for v in listed] == ["Ready", "Live"]
        video = (await api.get(f"/api/videos/{video_id}/", token=user_token)).data
        assert video["playable"] and video["status"] == "processing"
        assert (await api.get(video["hls_url"])).code == 200
        course_spec = await api.get(f"/api/video/{video_id}/360p/index.m3u8", token=user_token)
        assert course_spec.code == 200

    async def test_pending_videos_stay_hidden_from_users(self, api, user_token, db, growing_video):
        video_id = await growing_video()
        await db.videos.update_one({"_id": ObjectId(video_id)}, {"$set": {"playable": False}})
        assert (await api.get(f"/api/videos/{video_id}/", token=user_token)).code == 404


@pytest.fixture
def add_ready(db, clock, services):
    async def add() -> str:
        video_id = ObjectId()
        doc = new_video(video_id, "Ready", "", None, f"videos/{video_id}/source", None, clock())
        doc.update(status="ready")
        await db.videos.insert_one(doc)
        services.catalogue.videos.invalidate()
        return str(video_id)

    return add


async def test_course_spec_route_hides_a_processing_video_from_users_by_default(
    api, user_token, growing_video
):
    video_id = await growing_video()
    assert (await api.get(f"/api/video/{video_id}/360p/index.m3u8", token=user_token)).code == 404
