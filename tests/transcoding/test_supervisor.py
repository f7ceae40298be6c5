"""The supervisor's edge cases, with a fake FFmpeg that hangs, crashes or fails, and real processes killed."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import psutil
from bson import ObjectId

from models.jobs import Jobs
from services.container import build_services
from tests.media import make_long_claim, multipart
from tests.transcoding.conftest import fake_wrapper
from tests.transcoding.helpers import (
    alive,
    gone,
    media_files,
    ours,
    upload,
    wait_for,
    wait_for_job,
    wait_for_run,
    wait_for_status,
)

ROOT = Path(__file__).resolve().parents[2]


async def running_ffmpeg(runs: Path, run: int = 1) -> int:
    """The pid of the fake FFmpeg's `run`-th run, once it runs (it logs its pid first)."""
    lines = await wait_for_run(runs, run)
    return int(lines[run - 1].split()[0])


async def test_ffmpeg_that_hangs_is_killed_at_the_timeout_and_the_video_fails_after_its_attempts(
    api, staff_token, clips, db, settings, fake_ffmpeg, clock, services
):
    settings.transcode.timeout_base_s = 1.0
    settings.transcode.timeout_factor = 0.0
    settings.transcode.max_attempts = 1
    runs = fake_ffmpeg("hang")  # and it ignores SIGTERM: the supervisor must escalate to SIGKILL
    video_id = await upload(api, staff_token, clips["small"])
    pid = await running_ffmpeg(runs)
    doc = await wait_for_status(db, video_id, "failed", timeout=20)
    assert "longer than 1 s" in doc["error"]
    assert doc["error"].startswith("Transcoding failed after 1 attempts")
    assert await gone(pid)


async def test_an_encode_whose_output_stops_advancing_is_killed_long_before_its_timeout(
    api, staff_token, clips, db, settings, fake_ffmpeg
):
    settings.transcode.stall_s = 1.0
    settings.transcode.timeout_base_s = 600.0
    settings.transcode.max_attempts = 1
    runs = fake_ffmpeg("stall")  # it keeps reporting, but the same 0.3 s
    video_id = await upload(api, staff_token, clips["small"])
    pid = await running_ffmpeg(runs)
    started = time.monotonic()
    doc = await wait_for_status(db, video_id, "failed", timeout=20)
    assert time.monotonic() - started < 10
    assert doc["error"] == (
        "Transcoding failed after 1 attempts: FFmpeg encoded nothing new for 1 s (stuck at 0.3 s of 1.0 s) "
        "and was stopped."
    )
    assert await gone(pid)


async def test_an_audio_encode_that_stops_advancing_is_killed_long_before_the_jobs_timeout(
    api, staff_token, clips, db, settings, fake_ffmpeg
):
    settings.transcode.stall_s = 5.0  # the real video encode of the small clip takes well under that
    settings.transcode.timeout_base_s = 600.0
    settings.transcode.max_attempts = 1
    runs = fake_ffmpeg("audio-hang")
    video_id = await upload(api, staff_token, clips["small"])
    hangs = runs.parent / "audio-hangs"
    while not hangs.exists() or not hangs.read_text().strip():
        await asyncio.sleep(0.05)
    pid = int(hangs.read_text().split()[0])
    started = time.monotonic()
    doc = await wait_for_status(db, video_id, "failed", timeout=30)
    assert time.monotonic() - started < 20
    assert doc["error"] == (
        "Transcoding failed after 1 attempts: FFmpeg encoded no audio for 5 s and was stopped."
    )
    assert await gone(pid)  # it ignored SIGTERM: killed


async def test_a_failing_ffmpeg_is_retried_with_back_off_then_fails_with_a_readable_error(
    api, staff_token, clips, db, fake_ffmpeg, clock, services
):
    runs = fake_ffmpeg("fail")
    video_id = await upload(api, staff_token, clips["small"])
    await wait_for_run(runs, 1)
    job = await wait_for_job(db, video_id, lambda j: j["state"] == "queued" and j["attempts"] == 1)
    assert job["run_after"] == clock() + timedelta(seconds=30)
    assert "exit status 1" in job["last_error"]
    assert "Invalid data found" in job["last_error"]
    await asyncio.sleep(0.3)
    assert len(runs.read_text().splitlines()) == 1  # not before the back-off
    clock.advance(seconds=31)
    services.queue.wake()
    doc = await wait_for_status(db, video_id, "failed")
    assert doc["error"].startswith("Transcoding failed after 2 attempts: FFmpeg failed (exit status 1)")
    assert len(runs.read_text().splitlines()) == 2


async def test_a_transient_failure_then_success_makes_the_video_ready(
    api, staff_token, clips, db, fake_ffmpeg, clock, services, settings
):
    runs = fake_ffmpeg("flaky")
    video_id = await upload(api, staff_token, clips["small"])
    await wait_for_job(db, video_id, lambda j: j["state"] == "queued" and j["attempts"] == 1)
    clock.advance(seconds=31)
    services.queue.wake()
    doc = await wait_for_status(db, video_id, "ready")
    assert len(runs.read_text().splitlines()) == 2
    assert not [p for p in media_files(settings, video_id) if ".hls-tmp" in str(p)]
    assert doc["error"] is None


async def test_an_ffmpeg_crash_is_reported_as_killed_by_a_signal(api, staff_token, clips, db, fake_ffmpeg):
    fake_ffmpeg("crash")
    video_id = await upload(api, staff_token, clips["small"])
    job = await wait_for_job(db, video_id, lambda j: j["state"] == "queued" and j["attempts"] == 1)
    assert "killed by signal 11" in job["last_error"]


async def test_progress_is_written_while_ffmpeg_works(api, staff_token, clips, db, fake_ffmpeg):
    fake_ffmpeg("slow")
    video_id = await upload(api, staff_token, clips["small"])
    seen = await wait_for(db, video_id, lambda d: 0 < d.get("transcode_progress", 0) < 100)
    assert seen["status"] == "processing"
    assert (await wait_for_status(db, video_id, "ready"))["transcode_progress"] == 100


async def test_deleting_a_video_stops_its_ffmpeg_within_two_seconds(
    api, staff_token, clips, db, settings, fake_ffmpeg, services
):
    runs = fake_ffmpeg("hang")
    video_id = await upload(api, staff_token, clips["small"])
    pid = await running_ffmpeg(runs)
    assert (await api.delete(f"/api/videos/{video_id}/", token=staff_token)).code == 204
    assert await gone(pid, timeout=2.0)
    for _ in range(40):
        if not services.queue.running and not media_files(settings, video_id):
            break
        await asyncio.sleep(0.05)
    assert media_files(settings, video_id) == []
    assert await db.jobs.count_documents({}) == 0


async def test_a_job_deleted_by_another_process_is_stopped_at_the_next_lease_renewal(
    api, staff_token, clips, db, fake_ffmpeg, services
):
    runs = fake_ffmpeg("hang")
    video_id = await upload(api, staff_token, clips["small"])
    pid = await running_ffmpeg(runs)
    await db.jobs.delete_one({"key": f"transcode:{video_id}"})  # as a second server deleting it would
    assert await gone(pid, timeout=3.0)


async def test_a_killed_worker_process_is_replaced_and_its_ffmpeg_dies_with_it(
    api, staff_token, clips, db, fake_ffmpeg, services, clock
):
    runs = fake_ffmpeg("hang")
    video_id = await upload(api, staff_token, clips["small"])
    pid = await running_ffmpeg(runs)
    await wait_for_run(runs, 1)
    worker = psutil.Process(pid).parent()
    while "fake_ffmpeg" in " ".join(worker.cmdline()) or worker.name() == "sh":
        worker = worker.parent()
    worker.kill()
    job = await wait_for_job(db, video_id, lambda j: j["state"] == "queued" and j["attempts"] == 1)
    assert job["last_error"] == "The transcoding process died."
    assert await gone(pid)  # the kernel killed FFmpeg with its worker
    retries = fake_ffmpeg("slow")
    clock.advance(seconds=31)
    services.queue.wake()
    assert (await wait_for_status(db, video_id, "ready"))["status"] == "ready"
    assert len(runs.read_text().splitlines()) == 1
    assert len(retries.read_text().splitlines()) == 1


async def test_shutdown_hands_running_jobs_back_instead_of_failing_them(
    api, staff_token, clips, db, fake_ffmpeg, services
):
    runs = fake_ffmpeg("hang")
    video_id = await upload(api, staff_token, clips["small"])
    pid = await running_ffmpeg(runs)
    await services.queue.stop()
    assert not psutil.pid_exists(pid) or await gone(pid)
    job = await db.jobs.find_one({"key": f"transcode:{video_id}"})
    assert (job["state"], job["attempts"], job["owner"]) == ("queued", 0, None)
    doc = await db.videos.find_one({"_id": ObjectId(video_id)})
    assert doc["status"] == "pending" and doc["error"] is None


async def test_a_job_whose_holder_died_is_taken_over_once_its_lease_expires(db, settings, clips, clock, api):
    imports = Path(settings.media.root) / "imports"
    imports.mkdir(parents=True)
    (imports / "film.mp4").write_bytes(clips["small"].read_bytes())
    video = await db.videos.insert_one(
        {
            "title": "t",
            "status": "processing",
            "source": "imports/film.mp4",
            "created_at": clock(),
            "renditions": [],
        }
    )
    await db.jobs.insert_one(
        {
            "type": "transcode",
            "key": f"transcode:{video.inserted_id}",
            "payload": {"video_id": video.inserted_id},
            "state": "running",
            "attempts": 1,
            "max_attempts": 3,
            "owner": "dead-host:1/abc",
            "node": "dead-host:1",
            "run_after": clock(),
            "lease_until": clock() + timedelta(seconds=30),
        }
    )
    await asyncio.sleep(0.3)
    job = await db.jobs.find_one({})
    assert job["owner"] == "dead-host:1/abc"  # still leased: nobody touches it
    clock.advance(seconds=31)
    doc = await wait_for_status(db, str(video.inserted_id), "ready")
    assert doc["renditions"]
    assert (await db.jobs.find_one({}))["state"] == "done"


async def test_two_runners_racing_for_one_job_never_both_get_it(db, settings, clock):
    jobs = Jobs(db)
    job_id = await jobs.enqueue("transcode", {"video_id": ObjectId()}, clock(), key="k", max_attempts=3)
    claims = await asyncio.gather(
        *(jobs.claim(["transcode"], f"runner-{n}/1", f"runner-{n}", clock(), 60) for n in range(8))
    )
    winners = [c["owner"] for c in claims if c is not None]
    assert len(winners) == 1
    assert not await jobs.renew(job_id, "someone-else/1", clock(), 60)
    assert await jobs.renew(job_id, winners[0], clock(), 60)


async def test_two_transcoders_sharing_a_database_run_a_job_once(
    api, staff_token, clips, db, settings, fake_ffmpeg, clock, services
):
    second = build_services(settings, db, clock=clock, node="second-node")
    await second.start()
    try:
        runs = fake_ffmpeg("slow")
        video_ids = [await upload(api, staff_token, clips["small"], title=f"v{n}") for n in range(10)]
        for video_id in video_ids:
            await wait_for_status(db, video_id, "ready")
    finally:
        await second.stop()
    assert len(runs.read_text().splitlines()) == 10  # each job ran exactly once
    owners = {job["owner"] for job in await db.jobs.find({"type": "transcode"}).to_list(None)}
    assert owners == {None}  # all settled


async def test_a_runner_stopped_hard_mid_job_is_taken_over_by_another_once_its_lease_runs_out(
    api, staff_token, clips, db, settings, fake_ffmpeg, clock, services
):
    runs = fake_ffmpeg("hang")
    video_id = await upload(api, staff_token, clips["small"])
    pid = await running_ffmpeg(runs)
    # The first runner dies without a word: its loop and job stop, its FFmpeg is killed, no hand-back.
    services.queue._task.cancel()
    for running in list(services.queue.running.values()):
        running.task.cancel()
    os.kill(pid, signal.SIGKILL)
    job = await wait_for_job(db, video_id, lambda j: j["state"] == "running")
    second = build_services(settings, db, clock=clock, node="second-node")
    fake_ffmpeg("slow")
    await second.start()
    try:
        await asyncio.sleep(0.3)
        assert (await db.jobs.find_one({"_id": job["_id"]}))["owner"] == job["owner"]  # leased: it waits
        clock.advance(seconds=settings.jobs.lease_s + 1)
        second.queue.wake()
        assert (await wait_for_status(db, video_id, "ready"))["renditions"]
    finally:
        await second.stop()
    done = await db.jobs.find_one({"_id": job["_id"]})
    assert (done["state"], done["attempts"]) == ("done", 2)


async def test_a_source_that_is_not_a_video_fails_at_once_without_retries(db, settings, clock, api):
    imports = Path(settings.media.root) / "imports"
    imports.mkdir(parents=True)
    (imports / "notes.mp4").write_text("not a film")
    video = await db.videos.insert_one(
        {
            "title": "t",
            "status": "pending",
            "source": "imports/notes.mp4",
            "created_at": clock(),
            "renditions": [],
        }
    )
    doc = await wait_for_status(db, str(video.inserted_id), "failed")
    assert doc["error"] == "The file is not a video FFmpeg can read."
    assert (await db.jobs.find_one({}))["attempts"] == 1


async def test_a_source_inserted_by_an_admin_that_claims_ten_hours_fails_at_once_naming_the_limit(
    db, settings, clock, api, tmp_path
):
    imports = Path(settings.media.root) / "imports"
    imports.mkdir(parents=True)
    make_long_claim(imports / "long.mkv")
    video = await db.videos.insert_one(
        {
            "title": "t",
            "status": "pending",
            "source": "imports/long.mkv",
            "created_at": clock(),
            "renditions": [],
        }
    )
    doc = await wait_for_status(db, str(video.inserted_id), "failed")
    assert doc["error"] == "The video lasts 10:00:01, longer than the 4:00:00 allowed (media.max_duration_s)."
    assert (await db.jobs.find_one({}))["attempts"] == 1


async def test_a_missing_source_fails_with_a_sentence(db, clock, api):
    video = await db.videos.insert_one(
        {
            "title": "t",
            "status": "pending",
            "source": "imports/gone.mp4",
            "created_at": clock(),
            "renditions": [],
        }
    )
    doc = await wait_for_status(db, str(video.inserted_id), "failed")
    assert doc["error"] == "The source file is missing."


def test_kill_9_of_the_server_leaves_no_worker_and_no_ffmpeg(tmp_path, clips):
    """The whole chain dies with the server: workers by PDEATHSIG, and FFmpeg with its worker."""
    wrapper, runs = fake_wrapper(tmp_path, "hang")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"media:\n  root: {tmp_path / 'media'}\naccounts:\n  bcrypt_rounds: 4\n"
        f"transcode:\n  ffmpeg: {wrapper}\njobs:\n  poll_interval_s: 0.1\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
    env.update(ADMIN_EMAIL="root@example.com", ADMIN_PASSWORD="a-long-password")
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "server.py"), "--port", "0", "--config", str(config)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        upload_to(listening_url(log_path), clips["small"])
        for _ in range(200):
            if runs.exists() and runs.read_text():
                break
            time.sleep(0.05)
        fake_pid = int(runs.read_text().split()[0])
        descendants = [p.pid for p in psutil.Process(server.pid).children(recursive=True)]
        assert fake_pid in descendants
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        for _ in range(100):
            if not any(alive(pid) for pid in descendants):
                break
            time.sleep(0.05)
        assert [pid for pid in descendants if alive(pid)] == []
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert ours(tmp_path) == []


def listening_url(log_path: Path) -> str:
    for _ in range(400):
        match = re.search(r"listening on (http://\S+)", log_path.read_text())
        if match:
            return match.group(1)
        time.sleep(0.05)
    raise AssertionError(log_path.read_text())


def upload_to(url: str, clip: Path) -> str:
    """Log in as the bootstrap admin and upload a clip, as a staff front-end would."""
    login = urllib.request.Request(
        f"{url}/api/accounts/login/",
        method="POST",
        headers={"Content-Type": "application/json"},
        data=json.dumps({"email": "root@example.com", "password": "a-long-password"}).encode(),
    )
    token = json.loads(urllib.request.urlopen(login, timeout=10).read())["token"]
    body, content_type = multipart({"title": "doomed"}, clip.read_bytes())
    request = urllib.request.Request(
        f"{url}/api/videos/",
        method="POST",
        data=body,
        headers={"Content-Type": content_type, "Authorization": f"Token {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        return json.loads(response.read())["id"]


async def test_progress_shows_from_the_moment_the_job_starts_never_0_while_processing(
    api, staff_token, clips, db, fake_ffmpeg
):
    fake_ffmpeg("slow")  # reports 0 % first, then moves every 0.2 s
    video_id = await upload(api, staff_token, clips["small"])
    first = await wait_for(db, video_id, lambda d: d.get("status") == "processing")
    assert first["transcode_progress"] >= 1
    seen = []
    while (doc := await db.videos.find_one({"_id": ObjectId(video_id)}))["status"] == "processing":
        seen.append(doc["transcode_progress"])
        await asyncio.sleep(0.02)
    assert seen and min(seen) >= 1
    assert doc["status"] == "ready"
