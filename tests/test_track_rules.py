"""When a video takes tracks: not before it is ready, and not on a ladder made before CMAF (no FFmpeg:
the videos are documents as an admin might insert them)."""

from __future__ import annotations

from bson import ObjectId

from models.videos import new_video
from tests.media import multipart

SRT = b"1\n00:00:01,000 --> 00:00:02,000\nHello\n"


async def insert(services, **fields) -> str:
    video_id = ObjectId()
    doc = new_video(video_id, "t", "", None, "", None, services.clock(), duration=10.0, width=64, height=48)
    await services.catalogue.videos.insert({**doc, **fields})
    return str(video_id)


async def add(api, token, video_id):
    body, content_type = multipart({"language": "en", "label": "English"}, SRT, filename="s.srt")
    return await api.post(
        f"/api/videos/{video_id}/subtitles/", body=body, headers={"Content-Type": content_type}, token=token
    )


async def test_a_video_still_being_made_answers_409_until_it_is_ready(api, services, staff_token):
    for status in ("pending", "processing", "failed"):
        video_id = await insert(services, status=status)
        reply = await add(api, staff_token, video_id)
        assert reply.code == 409 and reply.data["detail"] == "Tracks can be added once the video is ready."
        chapters = await api.put(
            f"/api/videos/{video_id}/chapters/", [{"start": 0, "title": "a"}], token=staff_token
        )
        assert chapters.code == 409


async def test_a_ladder_made_before_cmaf_answers_409_until_retranscoded(api, services, staff_token):
    video_id = await insert(
        services, status="ready", playable=True, hls_path=f"videos/{ObjectId()}/hls-old/master.m3u8"
    )
    reply = await add(api, staff_token, video_id)
    assert reply.code == 409 and "retranscode" in reply.data["detail"]


async def test_a_video_with_no_tracks_lists_none(api, services, staff_token, user_token):
    video_id = await insert(services, status="pending")
    listed = await api.get(f"/api/videos/{video_id}/subtitles/", token=staff_token)
    assert listed.code == 200 and listed.data == []
    hidden = await api.get(f"/api/videos/{video_id}/subtitles/", token=user_token)
    assert hidden.code == 404  # users see ready videos only
    shown = await api.get(f"/api/videos/{video_id}/", token=staff_token)
    tracks = (shown.data["subtitles"], shown.data["chapters"], shown.data["chapters_url"])
    assert tracks == ([], [], None)


async def test_a_track_of_a_video_without_a_ladder_can_still_be_removed(api, services, staff_token):
    track = {"id": "a" * 24, "language": "en", "label": "English", "default": True, "source": ""}
    video_id = await insert(services, status="failed", subtitles=[track])
    shown = await api.get(f"/api/videos/{video_id}/subtitles/", token=staff_token)
    assert [(t["id"], t["url"]) for t in shown.data] == [("a" * 24, None)]  # no ladder: no URL
    removed = await api.delete(f"/api/videos/{video_id}/subtitles/{'a' * 24}/", token=staff_token)
    assert removed.code == 204
    assert (await api.get(f"/api/videos/{video_id}/subtitles/", token=staff_token)).data == []
