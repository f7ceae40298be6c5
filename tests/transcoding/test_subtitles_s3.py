"""Subtitles with the media in an S3-compatible store behind presigned URLs (moto on loopback): the
track's playlist goes through the edge, its segments and whole file straight from the bucket."""

from __future__ import annotations

import re

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.test_storage_s3 import bucket, moto, s3_media  # noqa: F401 (fixtures)
from tests.transcoding.helpers import upload, wait_for_status
from tests.transcoding.test_subtitles import SRT, add, video_json

pytestmark = pytest.mark.slow


@pytest.fixture
def settings_overrides(bucket, moto):
    return {
        **s3_media(bucket[0], moto.url),
        "transcode": {"workers": 1, "preset": "ultrafast", "segment_s": 1, "progress_interval_s": 0.05},
        "jobs": {"poll_interval_s": 0.05, "jitter": 0},
    }


def keys(bucket) -> list[str]:
    name, client = bucket
    return sorted(obj["Key"] for obj in client.list_objects_v2(Bucket=name).get("Contents", []))


async def test_a_track_in_the_bucket_plays_through_the_edge_and_leaves_with_its_delete(
    api, staff_token, user_token, clips, db, bucket
):
    video_id = await upload(api, staff_token, clips["small"])
    await wait_for_status(db, video_id, "ready")
    track = (await add(api, staff_token, video_id, SRT, default="true")).data
    stored = [k for k in keys(bucket) if f"subs-{track['id']}/" in k or f"tracks/{track['id']}/" in k]
    assert any(k.endswith("/index.m3u8") for k in stored) and any(k.endswith("seg_00001.vtt") for k in stored)
    assert f"videos/{video_id}/tracks/{track['id']}/subtitles.vtt" in stored

    video = await video_json(api, user_token, video_id)
    client = AsyncHTTPClient()
    assert "X-Amz-Signature=" in video["subtitles"][0]["url"]  # the whole file: from the bucket
    assert b"First words" in (await client.fetch(video["subtitles"][0]["url"])).body
    master = (await api.get(video["hls_url"])).body.decode()
    uri = re.search(r'TYPE=SUBTITLES,.*URI="([^"]+)"', master).group(1)
    assert uri.startswith("/api/edge/") and uri.endswith(f"/subs-{track['id']}/index.m3u8")
    playlist = await api.get(uri)
    assert playlist.code == 200 and "public, max-age=" in playlist.headers["Cache-Control"]
    first = next(line for line in playlist.body.decode().splitlines() if line.startswith("http"))
    assert "X-Amz-Signature=" in first
    segment = (await client.fetch(first)).body.decode()
    assert segment.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:") and "First words" in segment
    mpd = (await api.get(video["dash_url"])).body.decode()
    base_url = re.search(r"<BaseURL>([^<]+)</BaseURL></Representation>", mpd).group(1)
    assert "X-Amz-Signature=" in base_url

    removed = await api.delete(f"/api/videos/{video_id}/subtitles/{track['id']}/", token=staff_token)
    assert removed.code == 204
    assert [k for k in keys(bucket) if track["id"] in k] == []
