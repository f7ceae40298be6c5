"""The server side of transcoding: claims jobs, feeds the process pool, writes every result to MongoDB.

Jobs live in MongoDB, so they survive restarts and several server processes can share them; each
process runs at most `workers` jobs at a time in a ProcessPoolExecutor of spawned workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import secrets
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from bson import ObjectId

from core.clock import Clock, utcnow
from core.config import TranscodeSettings
from core.media import MediaStore, remove_tree
from models.db import Database
from models.jobs import Jobs
from models.videos import FAILED, PENDING, PROCESSING, READY, Videos
from transcode.ffmpeg import ffmpeg_binary
from transcode.ladder import EncodeSettings, plan_rungs
from transcode.probe import MediaInfo, NotAVideo, probe
from transcode.worker import CANCEL_FILE, CANCELLED, DONE, INVALID, JobSpec, Outcome, init_worker, transcode

log = logging.getLogger("videoflix.transcode")
SHUTDOWN = "shutdown"


def default_workers() -> int:
    """One transcoding process per two cores, at least one: FFmpeg itself uses several threads."""
    return max(1, (os.cpu_count() or 2) // 2)


@dataclass
class Running:
    """A job this process is running."""

    video_id: ObjectId
    key: str
    tmp_dir: Path
    task: asyncio.Task | None = None
    last_percent: int = -1
    last_write: float = 0.0
    pid: int | None = None

    def cancel(self, reason: str) -> None:
        """Ask the worker to stop FFmpeg (it looks for this file several times a second)."""
        with contextlib.suppress(OSError):
            (self.tmp_dir / CANCEL_FILE).write_text(reason)


class Transcoder:
    """Runs queued jobs in a process pool, and keeps their videos' state in MongoDB."""

    def __init__(
        self,
        db: Database,
        media: MediaStore,
        settings: TranscodeSettings,
        *,
        clock: Clock = utcnow,
        workers: int | None = None,
    ) -> None:
        self.db = db
        self.jobs = Jobs(db)
        self.videos = Videos(db)
        self.media = media
        self.settings = settings
        self.clock = clock
        self.workers = workers or settings.workers or default_workers()
        self.owner = f"{os.uname().nodename}:{os.getpid()}:{secrets.token_hex(3)}"
        self.running: dict[ObjectId, Running] = {}
        self._context = multiprocessing.get_context("spawn")
        self._events = self._context.Queue()
        self._pool: ProcessPoolExecutor | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task | None = None
        self._reader: threading.Thread | None = None

    def attach(self, videos: Videos) -> None:
        """Write videos through the app's collection wrapper, so its list cache sees every change."""
        self.videos = videos

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the pool, the event reader and the scheduling loop (on the running event loop)."""
        loop = asyncio.get_running_loop()
        self._pool = self._new_pool()
        self._reader = threading.Thread(
            target=self._read_events, args=(loop,), name="transcode-events", daemon=True
        )
        self._reader.start()
        self._loop_task = loop.create_task(self._run(), name="transcoder")
        log.info("transcoder started: %d worker(s), FFmpeg %s", self.workers, self.ffmpeg)

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop claiming, stop every FFmpeg and hand its job back, and leave no process behind."""
        self._stopping = True
        self._wake.set()
        for job in list(self.running.values()):
            job.cancel(SHUTDOWN)
        tasks = [job.task for job in self.running.values() if job.task]
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        if self._loop_task:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._pool:
            await asyncio.get_running_loop().run_in_executor(None, self._close_pool, self._pool)
            self._pool = None
        self._events.put(None)
        if self._reader:
            self._reader.join(timeout=5)
        log.info("transcoder stopped")

    def wake(self) -> None:
        """Look for work now (a job was queued)."""
        self._wake.set()

    async def cancel(self, video_id: ObjectId, wait_s: float = 3.0) -> None:
        """Stop the video's FFmpeg, if this process runs it, and wait until it has stopped."""
        job = self.running.get(video_id)
        if job is None:
            return
        job.cancel("cancelled")
        if job.task is not None:
            await asyncio.wait([job.task], timeout=wait_s)

    @property
    def ffmpeg(self) -> str:
        return self.settings.ffmpeg or ffmpeg_binary()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=self._context,
            initializer=init_worker,
            initargs=(self._events, os.getpid()),
        )

    @staticmethod
    def _close_pool(pool: ProcessPoolExecutor) -> None:
        pool.shutdown(wait=True, cancel_futures=True)

    def _restart_pool(self) -> None:
        """A worker died: the pool is broken for good, so start a fresh one."""
        old, self._pool = self._pool, self._new_pool()
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)
        log.warning("a transcoding worker died; the pool was restarted")

    def _read_events(self, loop: asyncio.AbstractEventLoop) -> None:
        """Thread: move worker events onto the event loop."""
        while True:
            item = self._events.get()
            if item is None:
                return
            with contextlib.suppress(RuntimeError):  # the loop closed under us at exit
                loop.call_soon_threadsafe(self._on_event, *item)

    def _on_event(self, key: str, kind: str, value: Any) -> None:
        job = next((j for j in self.running.values() if j.key == key), None)
        if job is None:
            return
        if kind == "pid":
            job.pid = value
        elif kind == "progress" and value != job.last_percent:
            now = asyncio.get_running_loop().time()
            if value == 100 or now - job.last_write >= self.settings.progress_interval_s:
                job.last_percent, job.last_write = value, now
                asyncio.get_running_loop().create_task(self._write_progress(job.video_id, value))

    async def _write_progress(self, video_id: ObjectId, percent: int) -> None:
        with contextlib.suppress(Exception):
            await self.videos.update(video_id, {"transcode_progress": percent}, self.clock())

    # --- scheduling ---------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.adopt_pending_videos()
                await self.fill()
            except Exception:
                log.exception("transcoder loop failed; trying again")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_interval_s):
                    await self._wake.wait()

    async def adopt_pending_videos(self) -> int:
        """Queue a job for every pending video with a source and no live job (e.g. inserted by an admin)."""
        pending = await self.db.videos.find(
            {"status": PENDING, "source": {"$nin": [None, ""]}}, {"_id": 1}
        ).to_list(500)
        ids = [doc["_id"] for doc in pending]
        if not ids:
            return 0
        live = await self.jobs.live_for(ids)
        orphans = [video_id for video_id in ids if video_id not in live]
        for video_id in orphans:
            await self.jobs.enqueue(video_id, self.clock())
            log.info("queued video %s found pending without a job", video_id)
        return len(orphans)

    async def fill(self) -> None:
        """Claim jobs while this process has free workers."""
        while not self._stopping and len(self.running) < self.workers:
            job = await self.jobs.claim(self.owner, self.clock(), self.settings.lease_s)
            if job is None:
                return
            video_id = job["video_id"]
            run_id = f"{job['attempts']}-{secrets.token_hex(3)}"
            running = Running(
                video_id, f"{video_id}:{run_id}", self.media.video_dir(video_id) / f".hls-tmp-{run_id}"
            )
            self.running[video_id] = running
            running.task = asyncio.get_running_loop().create_task(self._execute(job, running))

    # --- one job ------------------------------------------------------------------------------

    async def _execute(self, job: dict[str, Any], running: Running) -> None:
        video_id = job["video_id"]
        try:
            outcome, info = await self._attempt(job, running)
            await self._settle(job, running, outcome, info)
        except Exception:
            log.exception("job for video %s broke; it will be retried when its lease runs out", video_id)
        finally:
            await remove_tree(running.tmp_dir)
            self.running.pop(video_id, None)
            self._wake.set()

    async def _attempt(self, job: dict[str, Any], running: Running) -> tuple[Outcome, MediaInfo | None]:
        video = await self.videos.get(job["video_id"])
        if video is None:
            await self.jobs.cancel(job["video_id"])
            return Outcome(CANCELLED, "the video is gone"), None
        source = self.media.resolve(video.get("source") or "")
        if not video.get("source") or not source.is_file():
            return Outcome(INVALID, "The source file is missing."), None
        try:
            info = await probe(source)
        except NotAVideo as err:
            return Outcome(INVALID, str(err)), None
        fields: dict[str, Any] = {"transcode_progress": 0, "error": None}
        if video.get("status") != READY:  # a ready video stays playable while it is re-made
            fields.update(
                status=PROCESSING, duration=round(info.duration, 3), width=info.width, height=info.height
            )
        await self.videos.update(job["video_id"], fields, self.clock())
        spec = JobSpec(
            key=running.key,
            ffmpeg=self.ffmpeg,
            source=str(source),
            out_dir=str(running.tmp_dir),
            info=info,
            rungs=tuple(plan_rungs(info)),
            settings=EncodeSettings(
                self.settings.preset,
                self.settings.crf,
                self.settings.segment_s,
                self.settings.audio_bitrate_k,
            ),
            timeout_s=self.settings.timeout_base_s + self.settings.timeout_factor * info.duration,
            nice=self.settings.nice,
            progress_interval_s=min(0.5, self.settings.progress_interval_s),
        )
        lease = asyncio.get_running_loop().create_task(self._keep_lease(job, running))
        try:
            assert self._pool is not None
            outcome = await asyncio.wrap_future(self._pool.submit(transcode, spec))
        except BrokenProcessPool:
            self._restart_pool()
            outcome = Outcome("transient", "The transcoding process died.")
        finally:
            lease.cancel()
        return outcome, info

    async def _keep_lease(self, job: dict[str, Any], running: Running) -> None:
        """Renew the lease every second; if the job is gone or taken, stop FFmpeg."""
        interval = min(1.0, self.settings.lease_s / 3)
        while True:
            await asyncio.sleep(interval)
            if not await self.jobs.renew(job["video_id"], self.owner, self.clock(), self.settings.lease_s):
                running.cancel("cancelled")
                return

    async def _settle(
        self, job: dict[str, Any], running: Running, outcome: Outcome, info: MediaInfo | None
    ) -> None:
        video_id, now = job["video_id"], self.clock()
        if outcome.kind == DONE:
            await self._publish(job, running, outcome)
        elif outcome.kind == CANCELLED:
            if outcome.error == SHUTDOWN and await self.jobs.hand_back(video_id, self.owner, now):
                await self.videos.update(video_id, {"transcode_progress": 0}, now)
                await self.videos.update(video_id, {"status": PENDING}, now, match={"status": PROCESSING})
                log.info("job for video %s handed back at shutdown", video_id)
        elif outcome.kind == INVALID or job["attempts"] >= self.settings.max_attempts:
            reason = outcome.error or "Transcoding failed."
            error = (
                reason
                if outcome.kind == INVALID
                else (f"Transcoding failed after {job['attempts']} attempts: {reason}")
            )
            if await self.jobs.fail(video_id, self.owner, now, error):
                await self.videos.update(
                    video_id, {"status": FAILED, "error": error, "transcode_progress": 0}, now
                )
                log.warning("video %s failed: %s", video_id, error)
        else:
            delay = self.settings.retry_base_s * 2 ** (job["attempts"] - 1)
            if await self.jobs.retry_later(
                video_id, self.owner, now + timedelta(seconds=delay), outcome.error or ""
            ):
                await self.videos.update(video_id, {"transcode_progress": 0}, now)
                log.warning(
                    "video %s attempt %d failed, retrying in %.0f s: %s",
                    video_id,
                    job["attempts"],
                    delay,
                    outcome.error,
                )

    async def _publish(self, job: dict[str, Any], running: Running, outcome: Outcome) -> None:
        """Rename the finished output into place, then point the video at it and drop the old ladder."""
        video_id = job["video_id"]
        final = running.tmp_dir.with_name(f"hls-{running.key.split(':', 1)[1]}")
        os.replace(running.tmp_dir, final)
        before = await self.videos.get(video_id)
        fields = {
            "status": READY,
            "transcode_progress": 100,
            "error": None,
            "renditions": outcome.renditions,
            "hls_path": self.media.relative(final / "master.m3u8"),
            "thumbnail_path": self.media.relative(final / "thumbnail.jpg"),
        }
        if before is None or not await self.jobs.finish(video_id, self.owner, self.clock()):
            await remove_tree(final)  # deleted or taken over meanwhile
            return
        await self.videos.update(video_id, fields, self.clock())
        old = before.get("hls_path")
        if old and self.media.resolve(old).parent != final:
            await remove_tree(self.media.resolve(old).parent)
        log.info(
            "video %s ready: %d rendition(s) in %.1f s", video_id, len(outcome.renditions), outcome.seconds
        )
