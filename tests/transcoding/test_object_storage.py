"""Media in an S3-compatible store (moto's S3 server on loopback, the real client over real HTTP):
upload → transcode → play through the edge's presigned URLs; delete removes every object."""

from __future__ import annotations

import asyncio
from xml.etree import ElementTree

import pytest
from bson import ObjectId
from tornado.httpclient import AsyncHTTPClient

from tests.media import make_clip
from tests.test_storage_s3 import bucket, moto, s3_media  # noqa: F401 (fixtures)
from tests.transcoding.helpers import upload, wait_for, wait_for_job, wait_for_status
from tests.transcoding.test_streaming import ffmpeg_decodes
from tests.transcoding.test_watch_while_transcoding import (  # noqa: F401 (a fixture)
    decode_duration,
    real_time_ffmpeg,
    video_json,
)


@pytest.fixture
def settings_overrides(bucket, moto):
    overrides = s3_media(bucket[0], moto.url)
    overrides["media"]["edge_window_s"] = 600
    return {
        **overrides,
        "transcode": {"workers": 1, "preset": "ultrafast", "segment_s": 1, "progress_interval_s": 0.05},
        "jobs": {"poll_interval_s": 0.05, "jitter": 0},
    }


def keys(bucket) -> list[str]:
    name, client = bucket
    return sorted(obj["Key"] for obj in client.list_objects_v2(Bucket=name).get("Contents", []))


async def test_an_upload_is_transcoded_into_the_bucket_and_plays_through_presigned_urls(
    api, staff_token, clips, db, bucket, http_server_client
):
    video_id = await upload(api, staff_token, clips["small"])
    assert f"videos/{video_id}/source" in keys(bucket)
    await wait_for_status(db, video_id, "ready")
    stored = keys(bucket)
    assert any(k.startswith(f"videos/{video_id}/hls-") and k.endswith("master.m3u8") for k in stored)
    assert any(k.endswith("/120p/seg_00001.m4s") for k in stored)
    assert any(k.endswith("/audio/init.mp4") for k in stored) and any(
        k.endswith("/manifest.mpd") for k in stored
    )
    video = (await api.get(f"/api/videos/{video_id}/", token=staff_token)).data
    master = await api.get(video["hls_url"])
    assert master.code == 200 and master.headers["Cache-Control"] == "private, no-store"
    assert b"/api/edge/" in master.body  # variant playlists: checked by token, not by user
    variant_url = next(line for line in master.body.decode().splitlines() if line.startswith("/api/edge/"))
    variant = await api.get(variant_url)
    assert variant.code == 200 and "public, max-age=" in variant.headers["Cache-Control"]
    assert "X-Amz-Signature=" in variant.body.decode()  # segments straight from the bucket
    assert '#EXT-X-MAP:URI="http' in variant.body.decode()  # the init segment too
    assert b'URI="/api/edge/' in master.body  # the audio rendition: through the edge like the rungs
    again = await api.get(variant_url)
    assert again.body == variant.body  # the same bytes for every viewer in the window: cacheable
    code, errors = await ffmpeg_decodes(http_server_client.get_url(video["hls_url"]))
    assert code == 0, errors
    assert "X-Amz-Signature=" in video["thumbnail_url"]
    forged = variant_url.replace("/api/edge/", "/api/edge/x", 1)
    assert (await api.get(forged)).code == 403
    manifest = await api.get(video["dash_url"])  # DASH: every segment listed, presigned
    assert manifest.code == 200 and manifest.headers["Cache-Control"] == "private, no-store"
    assert b"<SegmentList" in manifest.body and b"SegmentTemplate" not in manifest.body
    # Every init and media segment it lists comes straight from the bucket. (FFmpeg's DASH demuxer
    # truncates URLs much longer than the manifest's own, as presigned ones are; DASH players do not.)
    root = ElementTree.fromstring(manifest.body)
    urls = [
        e.get("sourceURL") or e.get("media")
        for e in root.iter()
        if e.tag.endswith(("Initialization", "SegmentURL"))
    ]
    assert len(urls) >= 4 and all("X-Amz-Signature=" in url for url in urls)  # rung and audio, init and media
    client = AsyncHTTPClient()
    for url in urls:
        answer = await client.fetch(url)
        assert answer.code == 200 and answer.body


async def test_the_course_spec_routes_send_a_player_to_the_bucket(
    api, staff_token, user_token, clips, db, bucket, http_server_client
):
    video_id = await upload(api, staff_token, clips["small"])
    await wait_for_status(db, video_id, "ready")
    playlist = await api.get(f"/api/video/{video_id}/360p/index.m3u8", token=user_token)
    text = playlist.body.decode()
    assert playlist.code == 200 and "TYPE=AUDIO" in text  # the rung and its sound, under the grant
    lines = text.splitlines()
    [rung_url] = [lines[i + 1] for i, line in enumerate(lines) if line.startswith("#EXT-X-STREAM-INF:")]
    rung = await api.get(rung_url)  # a stream-grant URL: no header needed
    assert rung.code == 302 and rung.headers["Location"].startswith("/api/edge/")
    segment = await api.get(f"/api/video/{video_id}/120p/seg_00001.m4s", token=user_token)
    assert segment.code == 302 and "X-Amz-Signature=" in segment.headers["Location"]
    assert (await api.get(f"/api/video/{video_id}/360p/index.m3u8")).code == 401
    url = http_server_client.get_url(f"/api/video/{video_id}/360p/index.m3u8")
    code, errors = await ffmpeg_decodes(url, headers=f"Authorization: Token {user_token}\r\n")
    assert code == 0, errors


async def test_deleting_a_video_removes_every_object(api, staff_token, clips, db, bucket):
    video_id = await upload(api, staff_token, clips["small"])
    await wait_for_status(db, video_id, "ready")
    assert [k for k in keys(bucket) if video_id in k]
    assert (await api.delete(f"/api/videos/{video_id}/", token=staff_token)).code == 204
    assert [k for k in keys(bucket) if video_id in k] == []


async def test_the_store_down_at_upload_answers_503_and_leaves_nothing(
    api,
    staff_token,
    clips,
    db,
    bucket,
    moto,
):
    moto.stop()
    try:
        from tests.media import multipart

        body, content_type = multipart({"title": "doomed"}, clips["small"].read_bytes())
        reply = await api.post(
            "/api/videos/", body=body, headers={"Content-Type": content_type}, token=staff_token
        )
    finally:
        moto.start()
    assert reply.code == 503
    assert "media store" in reply.data["detail"]
    assert "secret" not in reply.data["detail"].lower()
    assert await db.videos.count_documents({}) == 0
    assert keys(bucket) == []


async def test_a_ladder_left_half_uploaded_by_a_dead_runner_is_removed_when_the_job_is_done(
    api, staff_token, clips, db, bucket
):
    name, client = bucket
    video_id = await upload(api, staff_token, clips["small"])
    # A runner that died mid-upload left part of a ladder under a prefix no video names.
    client.put_object(Bucket=name, Key=f"videos/{video_id}/hls-1-dead00/360p/seg_00000.ts", Body=b"x")
    await wait_for_job(db, video_id, lambda j: j["state"] == "done", kind="publish")  # clean-up follows it
    doc = await db.videos.find_one({"_id": ObjectId(video_id)})
    assert doc["status"] == "ready" and not doc["hls_path"].startswith(f"videos/{video_id}/hls-1-dead00/")
    assert [k for k in keys(bucket) if "dead00" in k] == []


async def test_the_store_down_while_publishing_retries_the_job_and_serves_nothing_half_published(
    api, staff_token, clips, db, bucket, moto, settings, clock
):
    video_id = await upload(api, staff_token, clips["small"])
    moto.stop()
    try:
        job = await wait_for_job(
            db, video_id, lambda j: j["state"] == "queued" and j["attempts"] >= 1, timeout=60
        )
        assert "media store" in job["last_error"]
        video = await db.videos.find_one({"_id": job["payload"]["video_id"]})
        assert video["hls_path"] is None and video["status"] != "ready"
    finally:
        moto.start()
    clock.advance(seconds=settings.transcode.retry_base_s * 2)
    assert (await wait_for_status(db, video_id, "ready"))["hls_path"]


@pytest.mark.slow
async def test_a_growing_ladder_reaches_the_bucket_as_it_is_made_and_plays_from_there(
    api, staff_token, db, bucket, tmp_path, http_server_client, real_time_ffmpeg
):
    clip = make_clip(tmp_path / "twelve.mp4", "640x360", seconds=12)
    video_id = await upload(api, staff_token, clip)
    doc = await wait_for(db, video_id, lambda d: d.get("playable"), timeout=30)
    prefix = doc["live_path"].rsplit("/", 1)[0] + "/"
    assert doc["live_path"].startswith(f"videos/{video_id}/hls-")  # a key in the bucket, not a folder
    stored = [k for k in keys(bucket) if k.startswith(prefix)]
    assert prefix + "master.m3u8" in stored
    assert {prefix + "120p/index.m3u8", prefix + "360p/index.m3u8", prefix + "audio/index.m3u8"} <= set(
        stored
    )
    for rendition in ("120p", "360p", "audio"):
        assert {prefix + f"{rendition}/init.mp4", prefix + f"{rendition}/seg_00001.m4s"} <= set(stored)

    video = await video_json(api, staff_token, video_id)
    assert video["status"] == "processing" and video["hls_url"]
    master = await api.get(video["hls_url"])
    assert master.code == 200 and b"/api/edge/" in master.body
    variant_url = next(line for line in master.body.decode().splitlines() if line.startswith("/api/edge/"))
    variant = await api.get(variant_url)
    assert variant.code == 200 and variant.headers["Cache-Control"] == "private, no-cache"
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in variant.body.decode()
    assert "#EXT-X-ENDLIST" not in variant.body.decode()
    assert "X-Amz-Signature=" in variant.body.decode()  # its segments straight from the bucket

    # More segments reach the bucket while the encode goes on; a player from the start gets them all.
    decoding = asyncio.ensure_future(
        decode_duration(http_server_client.get_url(video["hls_url"]), "-live_start_index", "0")
    )
    await asyncio.sleep(1.5)
    growing = [k for k in keys(bucket) if k.startswith(prefix) and k.endswith(".m4s")]
    assert len(growing) > len([k for k in stored if k.endswith(".m4s")])
    assert (await db.videos.find_one({"_id": ObjectId(video_id)}))["status"] == "processing"
    code, errors, seconds = await decoding
    assert code == 0, errors
    assert seconds >= 11.5

    doc = await wait_for_status(db, video_id, "ready")
    assert doc["hls_path"] == prefix + "master.m3u8"  # the ladder that grew is the one published
    final = (await api.get(variant_url)).body.decode()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in final and "#EXT-X-ENDLIST" in final
    video = await video_json(api, staff_token, video_id)
    code, errors, seconds = await decode_duration(http_server_client.get_url(video["hls_url"]))
    assert code == 0, errors
    assert seconds >= 11.5


@pytest.mark.slow
async def test_a_growing_ladder_cancelled_by_staff_leaves_nothing_in_the_bucket(
    api, staff_token, db, bucket, tmp_path, real_time_ffmpeg
):
    clip = make_clip(tmp_path / "twelve.mp4", "640x360", seconds=12)
    video_id = await upload(api, staff_token, clip)
    doc = await wait_for(db, video_id, lambda d: d.get("playable"), timeout=30)
    prefix = doc["live_path"].rsplit("/", 1)[0] + "/"
    assert [k for k in keys(bucket) if k.startswith(prefix)]
    job = await db.jobs.find_one({"key": f"transcode:{video_id}"})
    reply = await api.post(f"/api/admin/jobs/{job['_id']}/cancel/", token=staff_token)
    assert reply.code == 200
    doc = await wait_for_status(db, video_id, "failed")
    assert doc["playable"] is False and doc["live_path"] is None
    await wait_for(db, video_id, lambda d: not [k for k in keys(bucket) if k.startswith(prefix)], timeout=10)
    assert (await api.get(f"/api/videos/{video_id}/", token=staff_token)).data["hls_url"] is None
