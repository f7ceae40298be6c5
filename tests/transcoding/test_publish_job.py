"""Publishing is a job of its own: a store that fails while publishing retries the publish, never the
encode; the video waits at 99 %, playable on its growing ladder, and scratch stays until it is done."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from bson import ObjectId

from tests.test_storage_s3 import bucket, moto, s3_media  # noqa: F401 (fixtures)
from tests.transcoding.helpers import upload, wait_for, wait_for_run, wait_for_status


@pytest.fixture
def run_types() -> tuple[str, ...]:
    """Publish jobs are held back until the test lets them run (`let_publish_run`)."""
    return ("mail", "transcode")


def let_publish_run(services) -> None:
    services.queue.run_types.append("publish")
    services.queue.wake()


async def publish_job(db, video_id: str, check, timeout: float = 60.0) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        job = await db.jobs.find_one({"key": f"publish:{video_id}"})
        if job is not None and check(job):
            return job
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the publish job never got there: {job}")
        await asyncio.sleep(0.05)


class TestObjectStorage:
    @pytest.fixture
    def settings_overrides(self, bucket, moto):
        return {
            **s3_media(bucket[0], moto.url),
            "transcode": {"workers": 1, "preset": "ultrafast", "segment_s": 1, "progress_interval_s": 0.05},
            "publish": {"retry_base_s": 30, "max_attempts": 3},
            "jobs": {"poll_interval_s": 0.05, "jitter": 0},
        }

    async def test_the_store_down_while_publishing_retries_the_publish_and_ffmpeg_runs_once(
        self,
        api,
        staff_token,
        clips,
        db,
        bucket,
        moto,
        services,
        settings,
        clock,
        fake_ffmpeg,
    ):
        runs = fake_ffmpeg("slow")  # the real FFmpeg, each run logged
        video_id = await upload(api, staff_token, clips["small"])
        job = await publish_job(db, video_id, lambda j: j["state"] == "queued")
        assert job["only_node"] == "test-node"  # the scratch is on this node's disk
        waiting = await db.videos.find_one({"_id": ObjectId(video_id)})
        assert waiting["status"] == "processing" and waiting["transcode_progress"] == 99
        assert waiting["playable"] and waiting["live_path"].startswith(f"videos/{video_id}/hls-")
        moto.stop()
        try:
            let_publish_run(services)
            job = await publish_job(db, video_id, lambda j: j["state"] == "queued" and j["attempts"] == 1)
            assert "media store" in job["last_error"]
            video = await db.videos.find_one({"_id": ObjectId(video_id)})
            assert video["status"] == "processing" and video["playable"] and video["hls_path"] is None
            scratch = Path(settings.media.root) / "videos" / video_id / f".hls-tmp-{job['payload']['run']}"
            assert (scratch / "master.m3u8").is_file()  # kept for the next attempt
        finally:
            moto.start()
        clock.advance(seconds=60)
        services.queue.wake()
        doc = await wait_for_status(db, video_id, "ready")
        name, client = bucket
        stored = {o["Key"] for o in client.list_objects_v2(Bucket=name).get("Contents", [])}
        assert doc["hls_path"] in stored and doc["thumbnail_path"] in stored
        assert len(await wait_for_run(runs)) == 1  # the encode ran once
        await publish_job(db, video_id, lambda j: j["state"] == "done")
        assert not scratch.exists()
        transcode = await db.jobs.find_one({"key": f"transcode:{video_id}"})
        assert transcode["state"] == "done" and transcode["attempts"] == 1


class TestLocalStorage:
    @pytest.fixture
    def settings_overrides(self):
        return {
            "transcode": {"workers": 1, "preset": "ultrafast", "segment_s": 1, "progress_interval_s": 0.05},
            "jobs": {"poll_interval_s": 0.05, "jitter": 0},
        }

    async def test_a_local_publish_renames_the_whole_scratch_ladder_into_place(
        self, api, staff_token, clips, db, services, settings
    ):
        video_id = await upload(api, staff_token, clips["small"])
        job = await publish_job(db, video_id, lambda j: j["state"] == "queued")
        assert job["only_node"] is None  # scratch lies in the shared MEDIA_ROOT: any transcode node
        folder = Path(settings.media.root) / "videos" / video_id
        scratch = folder / f".hls-tmp-{job['payload']['run']}"
        waiting = await wait_for(db, video_id, lambda d: d.get("playable"))
        assert waiting["live_path"] == f"videos/{video_id}/{scratch.name}/master.m3u8"
        inode = os.stat(scratch).st_ino
        let_publish_run(services)
        doc = await wait_for_status(db, video_id, "ready")
        final = folder / f"hls-{job['payload']['run']}"
        assert doc["hls_path"] == f"videos/{video_id}/{final.name}/master.m3u8"
        assert os.stat(final).st_ino == inode  # one rename: never a half-copied ladder in place
        assert not scratch.exists() and (final / "thumbnail.jpg").is_file()
