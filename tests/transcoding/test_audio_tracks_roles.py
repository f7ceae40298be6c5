"""Split roles with the media in an S3-compatible store (moto on loopback): the api node receives an audio
track's file and keeps it in the bucket, and a transcode node (another process, its own MEDIA_ROOT) fetches
it from there and encodes it; the deletion of the track takes its kept file away."""

from __future__ import annotations

import asyncio

import pytest
from bson import ObjectId

from services.container import build_services
from tests.test_storage_s3 import bucket, moto, s3_media  # noqa: F401 (fixtures)
from tests.transcoding.helpers import wait_for
from tests.transcoding.test_audio_tracks import SECONDS, add_track, ready_video, tone

pytestmark = pytest.mark.slow


@pytest.fixture
def settings_overrides(bucket, moto):
    return {
        **s3_media(bucket[0], moto.url),
        "transcode": {"workers": 1, "preset": "ultrafast", "segment_s": 1, "progress_interval_s": 0.05},
        "jobs": {"poll_interval_s": 0.05, "jitter": 0},
    }


@pytest.fixture
def run_types() -> tuple[str, ...]:
    return ("mail", "transcode", "publish")  # this node runs no audio_track job


def keys(bucket) -> list[str]:
    name, client = bucket
    return sorted(obj["Key"] for obj in client.list_objects_v2(Bucket=name).get("Contents", []))


async def test_a_track_uploaded_to_the_api_node_is_encoded_by_a_transcode_node(
    api, staff_token, db, settings, bucket, tmp_path
):
    video_id = await ready_video(api, staff_token, db, tmp_path)
    reply = await add_track(api, staff_token, video_id, tone(tmp_path / "de.mp3", SECONDS), language="de")
    assert reply.code == 202
    track = reply.data
    kept = f"videos/{video_id}/tracks/audio-{track['id']}/source"
    assert kept in keys(bucket)
    job = await db.jobs.find_one({"type": "audio_track"})
    assert job["only_node"] is None and set(job["payload"]) == {"video_id", "track_id"}

    other = settings.model_copy(
        update={"media": settings.media.model_copy(update={"root": str(tmp_path / "transcoder")})}
    )
    transcoder = build_services(other, db, run_types=("audio_track",), node="transcoder")
    await transcoder.start()
    try:
        await wait_for(db, video_id, lambda d: d["audio_tracks"][0]["status"] == "ready", timeout=60)
    finally:
        await transcoder.stop()
    shown = (await api.get(f"/api/videos/{video_id}/", token=staff_token)).data
    master = (await api.get(shown["hls_url"])).body.decode()
    assert 'LANGUAGE="de",NAME="de"' in master and f"audio-{track['id']}/index.m3u8" in master
    assert any(k.endswith(f"audio-{track['id']}/init.mp4") for k in keys(bucket))

    gone = await api.delete(f"/api/videos/{video_id}/audio/{track['id']}/", token=staff_token)
    assert gone.code == 204
    assert [k for k in keys(bucket) if track["id"] in k] == []
    assert await db.videos.find_one({"_id": ObjectId(video_id), "audio_tracks.id": track["id"]}) is None


async def test_a_track_received_as_the_ladder_is_published_is_not_swept_away_with_the_source(
    api, staff_token, db, services, tmp_path
):
    video_id = await ready_video(api, staff_token, db, tmp_path)
    ingest = await services.audio_tracks.open_ingest(video_id, 1000)
    ingest.path.write_bytes(tone(tmp_path / "de.mp3", SECONDS).read_bytes())
    await services.media.release_source(ObjectId(video_id))  # what the end of a publish does
    assert ingest.path.is_file()
    await ingest.discard()
    await services.media.release_source(ObjectId(video_id))
    folder = services.media.video_dir(video_id)
    for _ in range(400):  # nothing else in it: the folder goes too (by this call, or the publish's own)
        if not folder.exists():
            break
        await asyncio.sleep(0.05)
    assert not folder.exists(), sorted(p.name for p in folder.iterdir())
