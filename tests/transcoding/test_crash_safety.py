"""Crash safety: a node killed with kill -9 mid-transcode and mid-mail resumes both at once on restart.

Without a real MongoDB (TEST_MONGODB_URI) the two lives of the node share one in-memory database inside
this process: the first life is "killed" by cancelling its tasks (no hand-back, no settling, leases left
as they were) and SIGKILLing its worker processes; the second life is a fresh composition root with the
same node name and a new boot id.
"""

from __future__ import annotations

import asyncio
import os
import signal
from email.message import EmailMessage
from pathlib import Path

from services.container import Services, build_services
from services.jobs import JobQueue
from tests.transcoding.helpers import gone, ours, wait_for_job, wait_for_run, wait_for_status

NODE = "crash-node:8000"


class StuckSmtp:
    """A mail backend whose server never answers: the mail is mid-send when the node dies."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def send(self, message: EmailMessage) -> None:
        self.started.set()
        await asyncio.Event().wait()


def kill_9(services: Services) -> None:
    """What kill -9 does to a node: its tasks stop where they are and its workers die; nothing is settled."""
    queue: JobQueue = services.queue
    tasks = [r.task for r in queue.running.values() if r.task is not None]
    if queue._task is not None:
        tasks.append(queue._task)
    tasks += services.sampler._tasks
    for task in tasks:
        task.cancel()
    executor = services.pool._pool
    for pid in list(executor._processes) if executor is not None else []:
        os.kill(pid, signal.SIGKILL)


async def forget_dead_pool(services: Services) -> None:
    """Release what the dead life left in this process (threads a real kill would have taken with it)."""
    await asyncio.sleep(0.2)  # the cancelled tasks unwind (without settling anything)
    pool = services.pool._pool
    services.pool._pool = None
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)
    await services.pool.stop()
    await services.media.close()
    services.hasher.close()


async def test_a_node_killed_mid_transcode_and_mid_mail_resumes_both_at_once_on_restart(
    db, settings, clock, clips, fake_ffmpeg, mailbox, tmp_path
):
    runs = fake_ffmpeg("hang")
    stuck = StuckSmtp()
    first = build_services(settings, db, clock=clock, node=NODE, mail_backend=stuck)
    await first.start()
    source = Path(settings.media.root) / "imports" / "film.mp4"
    source.parent.mkdir(parents=True)
    source.write_bytes(clips["small"].read_bytes())
    video = await db.videos.insert_one(
        {
            "title": "t",
            "status": "pending",
            "source": "imports/film.mp4",
            "created_at": clock(),
            "renditions": [],
        }
    )
    video_id = str(video.inserted_id)
    await first.queue.enqueue("transcode", {"video_id": video.inserted_id}, key=f"transcode:{video_id}")
    await first.mailer.send("welcome", "ann@example.com", {"name": "Ann", "link": "http://localhost:4200/"})
    pid = int((await wait_for_run(runs))[0].split()[0])
    await asyncio.wait_for(stuck.started.wait(), 10)

    kill_9(first)
    assert await gone(pid), "FFmpeg outlived its killed worker"
    await forget_dead_pool(first)
    held = await db.jobs.find({"state": "running"}).to_list(None)
    assert sorted(job["type"] for job in held) == ["mail", "transcode"]
    assert {job["owner"] for job in held} == {first.queue.owner}  # dead leases, still valid for 60 s

    fake_ffmpeg("slow")
    second = build_services(settings, db, clock=clock, node=NODE)
    assert second.queue.owner != first.queue.owner  # the same node, a new boot id
    await second.start()
    try:
        # no clock advance: the node recognises its own previous life's leases and takes them at once
        doc = await wait_for_status(db, video_id, "ready", timeout=60)
        assert doc["renditions"]
        [mail] = await mailbox.wait_for("ann@example.com", timeout=10)
        assert mail["Subject"]
        job = await wait_for_job(db, video_id, lambda j: j["state"] == "done")
        assert job["owner"] is None
    finally:
        await second.stop()
    assert ours(tmp_path) == []


async def test_another_nodes_stale_lease_still_waits_for_its_expiry(db, settings, clock, clips, fake_ffmpeg):
    runs = fake_ffmpeg("hang")
    first = build_services(settings, db, clock=clock, node=NODE, run_types=("transcode", "publish"))
    await first.start()
    source = Path(settings.media.root) / "imports" / "film.mp4"
    source.parent.mkdir(parents=True)
    source.write_bytes(clips["small"].read_bytes())
    video = await db.videos.insert_one(
        {
            "title": "t",
            "status": "pending",
            "source": "imports/film.mp4",
            "created_at": clock(),
            "renditions": [],
        }
    )
    await first.queue.enqueue(
        "transcode", {"video_id": video.inserted_id}, key=f"transcode:{video.inserted_id}"
    )
    pid = int((await wait_for_run(runs))[0].split()[0])
    kill_9(first)
    assert await gone(pid)
    await forget_dead_pool(first)

    fake_ffmpeg("slow")
    types = ("transcode", "publish")
    other = build_services(settings, db, clock=clock, node="other-node:8000", run_types=types)
    await other.start()
    try:
        await asyncio.sleep(0.5)
        job = await db.jobs.find_one({"type": "transcode"})
        assert job["owner"] == first.queue.owner  # another node's lease: untouched until it expires
        clock.advance(seconds=61)
        other.queue.wake()
        await wait_for_status(db, str(video.inserted_id), "ready", timeout=60)
    finally:
        await other.stop()
