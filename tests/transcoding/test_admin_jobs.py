"""Staff steer transcodes through the admin API: retry a failed one, cancel a running one."""

from __future__ import annotations

from tests.transcoding.helpers import gone, upload, wait_for_job, wait_for_run, wait_for_status


async def test_retrying_a_failed_transcode_makes_the_video_ready(
    api, staff_token, clips, db, settings, fake_ffmpeg
):
    settings.transcode.max_attempts = 1
    fake_ffmpeg("fail")
    video_id = await upload(api, staff_token, clips["small"])
    failed = await wait_for_status(db, video_id, "failed")
    assert failed["error"].startswith("Transcoding failed after 1 attempts")
    [job] = (await api.get("/api/admin/jobs/?type=transcode&state=failed", token=staff_token)).data["results"]
    assert job["payload"] == {"video_id": video_id}
    assert "exit status 1" in job["last_error"]
    settings.transcode.ffmpeg = None  # FFmpeg is fixed
    reply = await api.post(f"/api/admin/jobs/{job['id']}/retry/", token=staff_token)
    assert (reply.code, reply.data["state"], reply.data["attempts"]) == (200, "queued", 0)
    assert (await db.videos.find_one({"_id": failed["_id"]}))["error"] is None
    ready = await wait_for_status(db, video_id, "ready")
    assert ready["renditions"]
    video = (await api.get(f"/api/videos/{video_id}/", token=staff_token)).data
    assert video["status"] == "ready" and video["hls_url"]


async def test_cancelling_a_running_transcode_stops_its_ffmpeg_and_says_so_on_the_video(
    api, staff_token, clips, db, fake_ffmpeg
):
    runs = fake_ffmpeg("hang")
    video_id = await upload(api, staff_token, clips["small"])
    pid = int((await wait_for_run(runs, 1))[0].split()[0])
    job = await wait_for_job(db, video_id, lambda j: j["state"] == "running")
    reply = await api.post(f"/api/admin/jobs/{job['_id']}/cancel/", token=staff_token)
    assert (reply.code, reply.data["state"]) == (200, "cancelled")
    assert await gone(pid, timeout=3.0)
    video = (await api.get(f"/api/videos/{video_id}/", token=staff_token)).data
    assert (video["status"], video["error"]) == ("failed", "Transcoding was cancelled by staff.")
