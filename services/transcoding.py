"""The `transcode` job: one video's source made into an HLS ladder by the process pool.

The job probes the source, hands a JobSpec to a pool worker (which runs and supervises FFmpeg), keeps
the video's progress in MongoDB, and publishes the ladder atomically: output is written to a temporary
folder that is renamed into place, and the video points at it only once it is whole. A ready video being
re-made stays playable on its old ladder until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from bson import ObjectId

from core.clock import Clock, utcnow
from core.config import MediaSettings, TranscodeSettings
from core.media import MediaStore, remove_tree
from core.metrics import Metrics
from core.storage import StorageBackend, StorageUnavailable
from models.jobs import Jobs
from models.videos import FAILED, PENDING, PROCESSING, READY, Videos
from services.jobs import JobContext, JobStopped, JobType, PermanentError, RetryableError
from services.live_ladder import LiveLadderUpload
from transcode.ffmpeg import ffmpeg_binary
from transcode.ladder import EncodeSettings, plan_rungs
from transcode.pool import TranscodePool
from transcode.probe import SourceLimits, SourceRefused, probe
from transcode.worker import CANCEL_FILE, CANCELLED, DONE, INVALID, JobSpec, Outcome

log = logging.getLogger("videoflix.transcode")

TRANSCODE = "transcode"
NOT_PLAYABLE = {"playable": False, "live_path": None}


def source_limits(media: MediaSettings) -> SourceLimits:
    """What a source may claim, and what probing it may cost, from the media settings."""
    return SourceLimits(
        max_duration_s=media.max_duration_s,
        max_pixels=media.max_pixels,
        max_fps=media.max_fps,
        memory_mb=media.probe_memory_mb,
        timeout_s=media.probe_timeout_s,
    )


def transcode_key(video_id: ObjectId | str) -> str:
    """The key of a video's one transcode job."""
    return f"{TRANSCODE}:{video_id}"


# What a started transcode shows at once, before the worker's first report.
STARTED_PERCENT = 1


class TranscodeJobs(JobType):
    """Runs `transcode` jobs in the pool and keeps their videos' state."""

    name = TRANSCODE
    title = "Transcoding"

    def __init__(
        self,
        videos: Videos,
        jobs: Jobs,
        media: MediaStore,
        storage: StorageBackend,
        pool: TranscodePool,
        settings: TranscodeSettings,
        *,
        media_settings: MediaSettings | None = None,
        clock: Clock = utcnow,
        metrics: Metrics | None = None,
    ) -> None:
        self.videos = videos
        self.jobs = jobs
        self.media = media
        self.storage = storage
        self.pool = pool
        self.settings = settings
        self.media_settings = media_settings or MediaSettings()  # the limits a source must keep
        self.clock = clock
        self.metrics = metrics
        self.concurrency = pool.workers

    @property
    def ffmpeg(self) -> str:
        return self.settings.ffmpeg or ffmpeg_binary()

    async def sweep(self) -> None:
        """Queue a job for every pending video with a source and no live job (e.g. inserted by an admin)."""
        pending = await self.videos.pending_with_source(500)
        if not pending:
            return
        keys = {transcode_key(video_id): video_id for video_id in pending}
        live = await self.jobs.live_keys(list(keys))
        for key, video_id in keys.items():
            if key not in live:
                await self.jobs.enqueue(
                    TRANSCODE, {"video_id": video_id}, self.clock(), key=key, max_attempts=self.max_attempts
                )
                log.info("queued video %s found pending without a job", video_id)

    async def run(self, ctx: JobContext) -> None:
        video_id = ctx.payload["video_id"]
        run_id = f"{ctx.job['attempts']}-{secrets.token_hex(3)}"
        tmp_dir = self.media.video_dir(video_id) / f".hls-tmp-{run_id}"
        watcher = asyncio.get_running_loop().create_task(self._stop_on_request(ctx, tmp_dir))
        live = self._live_upload(video_id, tmp_dir, run_id)
        published = False
        try:
            spec, info_duration = await self._prepare(ctx, video_id, tmp_dir, run_id)
            events = WorkerEvents(self, ctx, video_id, tmp_dir, live)
            if live is not None:
                live.start()
            try:
                outcome = await self.pool.run(spec, events)
                await events.drain()  # its last writes land before the outcome's
            finally:
                if live is not None:
                    await live.stop()
            if outcome.kind == DONE:
                if not await ctx.still_held():
                    raise JobStopped("the job was cancelled or taken over")
                published = True  # from here the publish cleans up after itself
                await self._publish(video_id, tmp_dir, run_id, outcome, live)
            elif outcome.kind == CANCELLED:
                raise JobStopped(outcome.error)
            elif outcome.kind == INVALID:
                raise PermanentError(outcome.error or "The source cannot be transcoded.")
            else:
                raise RetryableError(outcome.error or "Transcoding failed.")
            log.info(
                "video %s ready: %d rendition(s) in %.1f s (%.2fx real time)",
                video_id,
                len(outcome.renditions),
                outcome.seconds,
                info_duration / outcome.seconds if outcome.seconds else 0,
            )
            if self.metrics is not None:
                self.metrics.transcode_done(outcome.seconds, info_duration)
        finally:
            watcher.cancel()
            await remove_tree(tmp_dir)
            if live is not None and not published:
                with contextlib.suppress(StorageUnavailable):  # else the next publish removes it
                    await self.storage.delete_prefix(live.prefix)

    def _live_upload(self, video_id: ObjectId, tmp_dir: Path, run_id: str) -> LiveLadderUpload | None:
        """With object storage, the growing ladder goes to the store as it is made (see live_ladder)."""
        if self.storage.local_path(f"videos/{video_id}") is not None:
            return None  # it grows below MEDIA_ROOT and is served from there

        async def announce(master_key: str, value: Any) -> None:
            await self._make_playable(video_id, master_key, value)

        return LiveLadderUpload(self.storage, tmp_dir, ladder_prefix(video_id, run_id), announce)

    async def _prepare(
        self, ctx: JobContext, video_id: ObjectId, tmp_dir: Path, run_id: str
    ) -> tuple[JobSpec, float]:
        video = await self.videos.get(video_id)
        if video is None:
            await self.jobs.delete(ctx.id)
            raise JobStopped("the video is gone")
        # Staff see it move from the start: probing and the first seconds of encoding count.
        if video.get("status") != READY:
            started = {"status": PROCESSING, "transcode_progress": STARTED_PERCENT}
            await self.videos.update(video_id, started, self.clock())
            await ctx.progress(STARTED_PERCENT)
        source = await self._fetch_source(video_id, video.get("source") or "")
        limits = source_limits(self.media_settings)
        try:
            info = await probe(source, limits=limits)
        except SourceRefused as err:
            raise PermanentError(str(err)) from err
        fields: dict[str, Any] = {"transcode_progress": STARTED_PERCENT, "error": None}
        if video.get("status") != READY:  # a ready video stays playable while it is re-made
            fields.update(
                status=PROCESSING, duration=round(info.duration, 3), width=info.width, height=info.height
            )
        await self.videos.update(video_id, fields, self.clock())
        encode = encode_settings(self.settings)
        spec = JobSpec(
            key=f"{video_id}:{run_id}",
            ffmpeg=self.ffmpeg,
            source=str(source),
            out_dir=str(tmp_dir),
            info=info,
            rungs=tuple(plan_rungs(info, encode)),
            settings=encode,
            timeout_s=self.settings.timeout_base_s + self.settings.timeout_factor * info.duration,
            nice=self.settings.nice,
            progress_interval_s=min(0.5, self.settings.progress_interval_s),
            stall_s=self.settings.stall_s,
            max_pixels=limits.decoder_max_pixels,
        )
        return spec, info.duration

    async def _fetch_source(self, video_id: ObjectId, stored: str) -> Path:
        """The source as a local file: where it lies on local storage, else fetched into scratch."""
        if stored and not stored.startswith("/") and self.storage.local_path(stored) is None:
            scratch = self.media.video_dir(video_id) / "source"
            try:
                if not await self.storage.exists(stored):
                    raise PermanentError("The source file is missing.")
                return await self.storage.download(stored, scratch)
            except StorageUnavailable as err:
                raise RetryableError(str(err)) from err
        source = self.media.resolve(stored)
        if not stored or not source.is_file():
            raise PermanentError("The source file is missing.")
        return source

    @staticmethod
    async def _stop_on_request(ctx: JobContext, tmp_dir: Path) -> None:
        """When the queue asks the job to stop, ask the worker (it looks for this file several times a
        second); the reason tells a shutdown (hand the job back) from a cancel."""
        await ctx.stopped.wait()
        with contextlib.suppress(OSError):
            (tmp_dir / CANCEL_FILE).write_text(ctx.stop_reason or "cancelled")

    async def _make_playable(self, video_id: ObjectId, live_path: str, value: Any) -> None:
        """Serve the growing ladder (its master's path or key): the video plays while it is transcoded
        (a ready video being re-made keeps its old ladder until the new one is whole)."""
        fields: dict[str, Any] = {"playable": True, "live_path": live_path}
        renditions = value.get("renditions") if isinstance(value, dict) else None
        if renditions:
            fields["renditions"] = renditions
        with contextlib.suppress(Exception):  # a hint: the job goes on either way
            await self.videos.update(video_id, fields, self.clock(), match={"status": PROCESSING})
            log.info("video %s playable while it is transcoded", video_id)

    async def _write_progress(self, ctx: JobContext, video_id: ObjectId, percent: int) -> None:
        percent = max(percent, STARTED_PERCENT)  # a started job never shows 0 % again
        with contextlib.suppress(Exception):  # progress is a hint; never fail a job over it
            await self.videos.update(video_id, {"transcode_progress": percent}, self.clock())
        await ctx.progress(percent)

    async def _publish(
        self, video_id: ObjectId, tmp_dir: Path, run_id: str, outcome: Outcome, live: LiveLadderUpload | None
    ) -> None:
        """Put the finished output in place, then point the video at it and drop the old ladder."""
        if self.storage.local_path(f"videos/{video_id}") is None:
            stored = live.segments if live is not None else set()
            await self._publish_to_store(video_id, tmp_dir, run_id, outcome, stored)
            return
        final = tmp_dir.with_name(f"hls-{run_id}")
        os.replace(tmp_dir, final)
        before = await self.videos.get(video_id)
        if before is None:
            await remove_tree(final)  # deleted meanwhile
            raise JobStopped("the video is gone")
        prefix = self.media.relative(final) + "/"
        fields = ready_fields(prefix, outcome, (final / "storyboard.vtt").is_file())
        await self.videos.update(video_id, fields, self.clock())
        old = before.get("hls_path")
        if old and self.media.resolve(old).parent != final:
            await remove_tree(self.media.resolve(old).parent)

    async def _publish_to_store(
        self, video_id: ObjectId, tmp_dir: Path, run_id: str, outcome: Outcome, stored: set[str]
    ) -> None:
        """Object storage: upload the whole ladder under a fresh prefix (but the segments the growing
        ladder stored already); only then does the video point at it as ready, so nothing half-published
        is ever served as a finished ladder. Older ladders (and leftovers of a runner that died
        mid-upload) go afterwards."""
        prefix = ladder_prefix(video_id, run_id)
        try:
            await self.storage.upload_folder(tmp_dir, prefix, skip=stored)
        except StorageUnavailable as err:
            raise RetryableError(str(err)) from err
        fields = ready_fields(prefix, outcome, (tmp_dir / "storyboard.vtt").is_file())
        if await self.videos.update(video_id, fields, self.clock()) is None:
            await self.storage.delete_prefix(prefix)  # deleted meanwhile
            raise JobStopped("the video is gone")
        with contextlib.suppress(StorageUnavailable):  # leftovers wait for the next publish
            keys = await self.storage.list_keys(f"videos/{video_id}/")
            stale = {key.split("/")[2] for key in keys if key.split("/")[2].startswith("hls-")}
            for folder in stale - {f"hls-{run_id}"}:
                await self.storage.delete_prefix(f"videos/{video_id}/{folder}/")
        await remove_tree(self.media.video_dir(video_id))  # the scratch copy of the source

    # --- what the queue tells us --------------------------------------------------------------

    async def _stopped(self, job: dict[str, Any], fields: dict[str, Any], **match: Any) -> None:
        """An attempt ended without a ladder: its growing one went with it (a ready video keeps its own)."""
        video_id, now = job["payload"]["video_id"], self.clock()
        await self.videos.update(video_id, NOT_PLAYABLE, now, match={"status": {"$ne": READY}})
        await self.videos.update(video_id, {"transcode_progress": 0, **fields}, now, match=match or None)

    async def on_failed(self, job: dict[str, Any], error: str) -> None:
        await self._stopped(job, {"status": FAILED, "error": error})

    async def on_retry(self, job: dict[str, Any], error: str) -> None:
        await self._stopped(job, {})

    async def on_handed_back(self, job: dict[str, Any]) -> None:
        await self._stopped(job, {})
        await self.videos.update(
            job["payload"]["video_id"], {"status": PENDING}, self.clock(), match={"status": PROCESSING}
        )

    async def on_cancelled(self, job: dict[str, Any]) -> None:
        await self._stopped(
            job,
            {"status": FAILED, "error": "Transcoding was cancelled by staff."},
            status={"$in": [PENDING, PROCESSING]},
        )

    async def on_requeued(self, job: dict[str, Any]) -> None:
        await self.videos.update(
            job["payload"]["video_id"],
            {"status": PENDING, "error": None, "transcode_progress": 0},
            self.clock(),
            match={"status": FAILED},
        )


def ladder_prefix(video_id: ObjectId, run_id: str) -> str:
    """Where one run's ladder lies in an object store."""
    return f"videos/{video_id}/hls-{run_id}/"


def encode_settings(settings: TranscodeSettings) -> EncodeSettings:
    """The encoder's knobs from config: the enabled rows of the ladder table among them."""
    return EncodeSettings(
        settings.preset,
        settings.crf,
        settings.segment_s,
        settings.audio_bitrate_k,
        tuple((r.height, r.max_kbps, r.level) for r in settings.ladder if r.enabled),
        settings.storyboard,
    )


def ready_fields(prefix: str, outcome: Outcome, storyboard: bool) -> dict[str, Any]:
    """What a video becomes once its ladder under `prefix` (a folder or key prefix) is whole."""
    return {
        "status": READY,
        "transcode_progress": 100,
        "error": None,
        "playable": True,
        "live_path": None,
        "renditions": outcome.renditions,
        "hls_path": prefix + "master.m3u8",
        "thumbnail_path": prefix + "thumbnail.jpg",
        "storyboard_path": prefix + "storyboard.vtt" if storyboard else None,
    }


class WorkerEvents:
    """What the worker reports, applied on the event loop: progress (written at most every interval) and
    the moment the ladder can be played (every rung has its first segments)."""

    def __init__(
        self,
        jobs: TranscodeJobs,
        ctx: JobContext,
        video_id: ObjectId,
        tmp_dir: Path,
        live: LiveLadderUpload | None = None,
    ) -> None:
        self.jobs = jobs
        self.live = live
        self.ctx = ctx
        self.video_id = video_id
        self.tmp_dir = tmp_dir
        self.last_percent = -1
        self.last_write = 0.0
        self.tasks: set[asyncio.Task] = set()

    def __call__(self, kind: str, value: Any) -> None:
        loop = asyncio.get_running_loop()
        if kind == "playable" and self.live is not None:
            self.live.want_playable(value)  # announced once the store holds it
        elif kind == "playable":
            live_path = self.jobs.media.relative(self.tmp_dir / "master.m3u8")
            self._spawn(self.jobs._make_playable(self.video_id, live_path, value))
        elif kind == "progress" and value != self.last_percent:
            now = loop.time()
            if value == 100 or now - self.last_write >= self.jobs.settings.progress_interval_s:
                self.last_percent, self.last_write = value, now
                self._spawn(self.jobs._write_progress(self.ctx, self.video_id, value))

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self) -> None:
        """Wait for the writes still under way."""
        if self.tasks:
            await asyncio.wait(list(self.tasks))
