"""The `transcode` job: one video's source made into an HLS ladder by the process pool.

The job probes the source, hands a JobSpec to a pool worker (which runs and supervises FFmpeg) that
writes the ladder into scratch (services/media), keeps the video's progress in MongoDB, and once the
ladder is whole queues a `publish` job (services/publishing.py): a store failure then retries the
publish, never the encode. A ready video being re-made stays playable on its old ladder until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from pathlib import Path
from typing import Any

from bson import ObjectId

from core.clock import Clock, utcnow
from core.config import MediaSettings, TranscodeSettings
from core.metrics import Metrics
from core.storage import ObjectMissing, StorageUnavailable
from models.jobs import Jobs
from models.videos import FAILED, PENDING, PROCESSING, READY, Rendition, Videos
from services.jobs import JobContext, JobStopped, JobType, PermanentError, RetryableError
from services.media import Media
from services.media.live import LiveLadder
from services.publishing import PUBLISH, PUBLISHING_PERCENT, publish_key, publish_payload
from transcode.ffmpeg import ffmpeg_binary
from transcode.ladder import EncodeSettings, plan_rungs
from transcode.pool import TranscodePool
from transcode.probe import SourceLimits, SourceRefused, probe
from transcode.worker import CANCEL_FILE, CANCELLED, DONE, INVALID, JobSpec, Outcome

log = logging.getLogger("videoflix.transcode")

TRANSCODE = "transcode"


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
        media: Media,
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
        scratch = self.media.scratch_ladder(video_id, run_id)
        watcher = asyncio.get_running_loop().create_task(self._stop_on_request(ctx, scratch))

        async def announce(master: str, value: Any) -> None:
            await self._make_playable(video_id, master, value)

        live = self.media.live_ladder(video_id, run_id, announce)
        handed_over = False
        try:
            spec, info_duration = await self._prepare(ctx, video_id, scratch, run_id)
            events = WorkerEvents(self, ctx, video_id, live)
            live.start()
            try:
                outcome = await self.pool.run(spec, events)
                await events.drain()  # its last writes land before the outcome's
            finally:
                await live.stop()
            if outcome.kind == CANCELLED:
                raise JobStopped(outcome.error)
            if outcome.kind == INVALID:
                raise PermanentError(outcome.error or "The source cannot be transcoded.")
            if outcome.kind != DONE:
                raise RetryableError(outcome.error or "Transcoding failed.")
            if not await ctx.still_held():
                raise JobStopped("the job was cancelled or taken over")
            await live.catch_up()  # the video plays the whole ladder while it waits to be published
            await self._record_encoding(video_id, outcome)
            await self._hand_to_publish(ctx, video_id, run_id, outcome)
            handed_over = True  # from here the scratch is the publish job's
            log.info(
                "video %s encoded: %d rendition(s) in %.1f s (%.2fx real time); publishing",
                video_id,
                len(outcome.renditions),
                outcome.seconds,
                info_duration / outcome.seconds if outcome.seconds else 0,
            )
            if self.metrics is not None:
                self.metrics.transcode_done(outcome.seconds, info_duration)
        finally:
            watcher.cancel()
            if not handed_over:
                await self.media.discard(video_id, run_id)

    async def _hand_to_publish(
        self, ctx: JobContext, video_id: ObjectId, run_id: str, outcome: Outcome
    ) -> None:
        """The ladder is whole in scratch: the video waits at 99 % (playable on it) for the publish job,
        which runs where the scratch is."""
        await self._write_progress(ctx, video_id, PUBLISHING_PERCENT)
        await ctx.queue.enqueue(
            PUBLISH,
            publish_payload(video_id, run_id, outcome.renditions),
            key=publish_key(video_id),
            only_node=self.media.publish_node(ctx.queue.node),
        )

    async def _prepare(
        self, ctx: JobContext, video_id: ObjectId, tmp_dir: Path, run_id: str
    ) -> tuple[JobSpec, float]:
        video = await self.videos.get(video_id)
        if video is None:
            await self.jobs.delete(ctx.id)
            raise JobStopped("the video is gone")
        # Staff see it move from the start: probing and the first seconds of encoding count.
        if video.status != READY:
            await self.videos.mark_processing(video_id, STARTED_PERCENT, self.clock())
            await ctx.progress(STARTED_PERCENT)
        source = await self._fetch_source(video_id, video.source or "")
        limits = source_limits(self.media_settings)
        try:
            info = await probe(source, limits=limits)
        except SourceRefused as err:
            raise PermanentError(str(err)) from err
        if video.status == READY:  # a ready video stays ready and playable while it is re-made
            await self.videos.set_progress(video_id, STARTED_PERCENT, self.clock())
        else:
            duration = round(info.duration, 3)
            await self.videos.set_size(video_id, duration, info.width, info.height, self.clock())
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
            target_vmaf=self.settings.target_vmaf or None,
            per_title_min_s=self.settings.per_title_min_s,
        )
        return spec, info.duration

    async def _record_encoding(self, video_id: ObjectId, outcome: Outcome) -> None:
        """Keep how the ladder was encoded (the CRF chosen for the title, the probe's VMAF) for staff."""
        if outcome.encoding:
            log.info("video %s encoding: %s", video_id, outcome.encoding)
            with contextlib.suppress(Exception):  # a record: never fail a whole ladder over it
                await self.videos.set_encoding(video_id, outcome.encoding, self.clock())

    async def _fetch_source(self, video_id: ObjectId, stored: str) -> Path:
        """The source as a local file (the media module fetches it from a store into scratch)."""
        try:
            return await self.media.fetch_source(video_id, stored)
        except ObjectMissing as err:
            raise PermanentError(err.detail) from err
        except StorageUnavailable as err:
            raise RetryableError(str(err)) from err

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
        reported = value.get("renditions") if isinstance(value, dict) else None
        renditions = [Rendition.from_doc(r) for r in reported or []]
        with contextlib.suppress(Exception):  # a hint: the job goes on either way
            await self.videos.show_growing(video_id, live_path, renditions, self.clock())
            log.info("video %s playable while it is transcoded", video_id)

    async def _write_progress(self, ctx: JobContext, video_id: ObjectId, percent: int) -> None:
        percent = max(percent, STARTED_PERCENT)  # a started job never shows 0 % again
        with contextlib.suppress(Exception):  # progress is a hint; never fail a job over it
            await self.videos.set_progress(video_id, percent, self.clock())
        await ctx.progress(percent)

    # --- what the queue tells us --------------------------------------------------------------

    async def _stopped(self, job: dict[str, Any]) -> ObjectId:
        """An attempt ended without a ladder: its growing one went with it (a ready video keeps its own)."""
        video_id: ObjectId = job["payload"]["video_id"]
        await self.videos.drop_growing(video_id, self.clock())
        return video_id

    async def on_failed(self, job: dict[str, Any], error: str) -> None:
        await self.videos.fail(await self._stopped(job), error, self.clock())

    async def on_retry(self, job: dict[str, Any], error: str) -> None:
        await self.videos.set_progress(await self._stopped(job), 0, self.clock())

    async def on_handed_back(self, job: dict[str, Any]) -> None:
        video_id = await self._stopped(job)
        await self.videos.set_progress(video_id, 0, self.clock())
        await self.videos.mark_pending(video_id, self.clock(), if_status=PROCESSING)

    async def on_cancelled(self, job: dict[str, Any]) -> None:
        error = "Transcoding was cancelled by staff."
        await self.videos.fail(
            await self._stopped(job), error, self.clock(), if_status_in=(PENDING, PROCESSING)
        )

    async def on_requeued(self, job: dict[str, Any]) -> None:
        await self.videos.mark_pending(job["payload"]["video_id"], self.clock(), if_status=FAILED)


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


class WorkerEvents:
    """What the worker reports, applied on the event loop: progress (written at most every interval) and
    the moment the ladder can be played (every rung has its first segments)."""

    def __init__(
        self,
        jobs: TranscodeJobs,
        ctx: JobContext,
        video_id: ObjectId,
        live: LiveLadder,
    ) -> None:
        self.jobs = jobs
        self.live = live
        self.ctx = ctx
        self.video_id = video_id
        self.last_percent = -1
        self.last_write = 0.0
        self.tasks: set[asyncio.Task[None]] = set()

    def __call__(self, kind: str, value: Any) -> None:
        loop = asyncio.get_running_loop()
        if kind == "playable":
            self.live.want_playable(value)  # announced once players can reach it
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
