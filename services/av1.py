"""The `av1` job: AV1 rungs beside the H.264 ones of a published CMAF ladder, listed once all are whole.

A follow-up of the publish job (`transcode.av1: after`), or of popularity (`popular`: the audience side
calls `Av1Planner.queue_av1` once a video passes `transcode.av1_min_views` views in 7 days), so the
time to first playable never moves. It runs in the transcode pool: the kept source is fetched (from the
store if need be), SVT-AV1 encodes every rung the ladder has, with key frames where the H.264 segments
begin (transcode/av1.py), into scratch. Then the AV1 folders are published into the ladder (a rename
on local storage, stored files in a bucket) and only then are the MPD and the master rewritten to list
them: a player never sees a level it cannot load.

It makes way for new uploads: it starts its encode only while no transcode runs in its process, and
stops it (handed back to the queue, the attempt not counted) when one starts, so an AV1 pass never
delays a new video's first playable moment. It never touches what plays: a failed or stopped AV1 job
leaves the H.264 ladder as it was. A video deleted or retranscoded meanwhile (its `hls_path` is no
longer the job's) makes the job give up cleanly; a retranscode's new ladder has no AV1 until its own
job lists it. MPEG-TS ladders (no MPD) never get AV1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import posixpath
import secrets
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any

from bson import ObjectId

from core.clock import Clock, utcnow
from core.config import MediaSettings, TranscodeSettings
from core.errors import Locked
from core.storage import ObjectMissing, StorageUnavailable
from models.videos import READY, Video, Videos
from services.jobs import (
    SHUTDOWN,
    JobContext,
    JobQueue,
    JobStopped,
    JobType,
    PermanentError,
    RetryableError,
)
from services.media import Media
from services.publishing import AfterReady
from services.transcoding import TRANSCODE, encode_settings, source_limits
from transcode.av1 import (
    AV1_CODEC,
    Av1Spec,
    encode_av1,
    read_av1_rungs,
    rung_files,
    segment_starts,
)
from transcode.cmaf import Rendition
from transcode.ffmpeg import ffmpeg_binary
from transcode.ladder import plan_rungs
from transcode.pool import TranscodePool
from transcode.probe import SourceRefused, probe
from transcode.worker import CANCEL_FILE, CANCELLED, DONE, INVALID

log = logging.getLogger("videoflix.transcode")

AV1 = "av1"
H264_CODEC = "avc1"
YIELD_CHECK_S = 0.5  # how often an AV1 encode looks for a transcode it must make way for


def av1_key(video_id: ObjectId | str) -> str:
    """The key of a video's one AV1 job."""
    return f"{AV1}:{video_id}"


def wants_av1(video: Video | None, hls_path: str | None = None) -> bool:
    """A ready CMAF ladder (it has an MPD) without AV1 yet; with `hls_path`, still that ladder."""
    return (
        video is not None
        and video.status == READY
        and bool(video.hls_path and video.dash_path)
        and (hls_path is None or video.hls_path == hls_path)
    )


async def queue_av1(queue: JobQueue, videos: Videos, settings: TranscodeSettings, video_id: Any) -> bool:
    """Queue the AV1 job of a video's current ladder unless AV1 is off, the ladder is not a ready CMAF
    one, it lists AV1 already, or a job for that ladder exists (queued, running, done or failed: staff
    retry a failed one). Idempotent; True when a job was queued."""
    if settings.av1 == "off":
        return False
    video = await videos.get(video_id)
    if video is None or not wants_av1(video) or AV1_CODEC in video.codecs:
        return False
    key = av1_key(video.id)
    existing = await queue.jobs.by_key(key)
    if existing is not None and (existing.get("payload") or {}).get("hls_path") == video.hls_path:
        return False
    await queue.enqueue(AV1, {"video_id": video.id, "hls_path": video.hls_path}, key=key)
    log.info("video %s: AV1 rungs queued", video.id)
    return True


def worth_listing(av1: list[Rendition], listed: Iterable[Rendition]) -> list[Rendition]:
    """The AV1 rungs that cost no more than the H.264 rung of their height (average bit rate): on
    content x264 codes very cheaply (flat animation) an AV1 rung at the fixed CRF can be larger, for no
    better picture (docs/quality.md), and is then not worth listing."""
    h264 = {r.track.height: r.average_bps for r in listed if r.track.codecs.startswith(H264_CODEC)}
    return [r for r in av1 if r.track.height in h264 and 0 < r.average_bps <= h264[r.track.height]]


class Av1Planner:
    """When a video gets its AV1 rungs: what the audience side (view counts) and staff tools call."""

    def __init__(self, queue: JobQueue, videos: Videos, settings: TranscodeSettings) -> None:
        self.queue = queue
        self.videos = videos
        self.settings = settings

    async def queue_av1(self, video_id: Any) -> bool:
        """Queue the video's AV1 job (see `queue_av1`); idempotent, safe to call on every view."""
        return await queue_av1(self.queue, self.videos, self.settings, video_id)

    async def on_views(self, video_id: Any, views_7d: int) -> bool:
        """With `transcode.av1: popular`, queue the AV1 job once the video has `av1_min_views` views in
        7 days; True when a job was queued."""
        if self.settings.av1 != "popular" or views_7d < self.settings.av1_min_views:
            return False
        return await self.queue_av1(video_id)


def after_publish(videos: Videos, settings: TranscodeSettings) -> AfterReady:
    """What the publish job calls once a CMAF ladder is ready: `after` queues its AV1 job; `popular`
    only for a video that had AV1 before (a popular video retranscoded); views queue the others."""

    async def follow(queue: JobQueue, video_id: ObjectId, before: Video) -> None:
        had_av1 = AV1_CODEC in before.codecs
        if settings.av1 == "after" or (settings.av1 == "popular" and had_av1):
            with contextlib.suppress(Exception):  # the ladder plays either way; staff can queue it again
                await queue_av1(queue, videos, settings, video_id)

    return follow


class Av1Jobs(JobType):
    """Runs `av1` jobs in the transcode pool; the H.264 ladder plays throughout, whatever happens."""

    name = AV1
    title = "AV1 encoding"

    def __init__(
        self,
        videos: Videos,
        media: Media,
        pool: TranscodePool,
        settings: TranscodeSettings,
        *,
        media_settings: MediaSettings | None = None,
        clock: Clock = utcnow,
        locks: Callable[[ObjectId], AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        self.videos = videos
        self.media = media
        self.pool = pool
        self.locks = locks  # one edit of a video's manifests at a time (services/tracks.py)
        self.settings = settings  # attempts and back-off as a transcode's
        self.media_settings = media_settings or MediaSettings()
        self.clock = clock
        self.concurrency = pool.workers

    async def run(self, ctx: JobContext) -> None:
        video_id: ObjectId = ctx.payload["video_id"]
        hls_path: str = ctx.payload["hls_path"]
        if not wants_av1(await self.videos.get(video_id), hls_path):
            log.info("video %s: its AV1 job has nothing to do (the ladder changed or is gone)", video_id)
            return
        run_id = f"av1-{ctx.job['attempts']}-{secrets.token_hex(3)}"
        scratch = self.media.scratch_ladder(video_id, run_id)
        loop = asyncio.get_running_loop()
        # The folder a stop is asked in (its CANCEL file) exists from now on, before the worker starts.
        await loop.run_in_executor(None, lambda: scratch.mkdir(parents=True, exist_ok=True))
        watcher = loop.create_task(self._stop_on_request(ctx, scratch))
        ladder = posixpath.dirname(hls_path) + "/"
        try:
            spec = await self._prepare(ctx, video_id, ladder, scratch, run_id)
            if spec is None:
                return
            await self._wait_for_transcodes(ctx)
            if ctx.stopped.is_set():
                raise JobStopped(ctx.stop_reason)
            yielding = asyncio.get_running_loop().create_task(self._make_way(ctx))
            try:
                outcome = await self.pool.run(spec, self._events(ctx), work=encode_av1)
            finally:
                yielding.cancel()
            if outcome.kind == CANCELLED:
                raise JobStopped(outcome.error)
            if outcome.kind == INVALID:
                raise PermanentError(outcome.error or "The source cannot be encoded to AV1.")
            if outcome.kind != DONE:
                raise RetryableError(outcome.error or "The AV1 encode failed.")
            if not await ctx.still_held():
                raise JobStopped("the job was cancelled or taken over")
            await self._list(video_id, hls_path, ladder, run_id, [rung.height for rung in spec.rungs])
            log.info("video %s: AV1 rungs listed after %.1f s of encoding", video_id, outcome.seconds)
        finally:
            watcher.cancel()
            await self.media.discard(video_id, run_id)
            await self.media.release_source(video_id)

    async def _prepare(
        self, ctx: JobContext, video_id: ObjectId, ladder: str, scratch: Any, run_id: str
    ) -> Av1Spec | None:
        """The AV1 pass over the ladder's own rungs, key frames at its segments' starts."""
        video = await self.videos.get(video_id)
        if video is None or not video.renditions:
            return None
        heights = sorted({r.height for r in video.renditions})
        try:
            playlist = await self.media.read_text(f"{ladder}{heights[-1]}p/index.m3u8")
            source = await self.media.fetch_source(video_id, video.source or "")
        except ObjectMissing as err:
            raise PermanentError(f"The AV1 rungs cannot be made: {err.detail}") from err
        except StorageUnavailable as err:
            raise RetryableError(str(err)) from err
        limits = source_limits(self.media_settings)
        try:
            info = await probe(source, limits=limits)
        except SourceRefused as err:
            raise PermanentError(str(err)) from err
        encode = encode_settings(self.settings)
        rungs = tuple(rung for rung in plan_rungs(info, encode) if rung.height in heights)
        if not rungs:
            return None
        await ctx.progress(1)
        return Av1Spec(
            key=f"{video_id}:{run_id}",
            ffmpeg=self.settings.ffmpeg or ffmpeg_binary(),
            source=str(source),
            out_dir=str(scratch),
            info=info,
            rungs=rungs,
            preset=self.settings.av1_preset,
            crf=self.settings.av1_crf,
            segment_s=self.settings.segment_s,
            cuts=tuple(segment_starts(playlist)),
            timeout_s=self.settings.timeout_base_s + self.settings.timeout_factor * info.duration,
            nice=self.settings.nice,
            progress_interval_s=max(0.5, self.settings.progress_interval_s),
            stall_s=self.settings.stall_s,
            max_pixels=limits.decoder_max_pixels,
        )

    async def _list(
        self, video_id: ObjectId, hls_path: str, ladder: str, run_id: str, heights: list[int]
    ) -> None:
        """Store the whole AV1 rungs worth listing beside the ladder, then add them to its presentation
        record and write its MPD and master again from it (the master last): listed only once all of
        them are there."""
        video = await self.videos.get(video_id)
        if video is None or not wants_av1(video, hls_path):
            log.info("video %s: AV1 rungs dropped, the ladder changed while they were made", video_id)
            return
        scratch = self.media.scratch_ladder(video_id, run_id)
        loop = asyncio.get_running_loop()
        try:
            presentation = await self.media.read_presentation(video)
            if presentation is None:
                log.info("video %s: AV1 rungs dropped, its ladder has no presentation record", video_id)
                return
            made = await loop.run_in_executor(None, read_av1_rungs, scratch, heights)
            av1 = worth_listing(made, presentation.videos)
            if not av1:
                log.info("video %s: no AV1 rung is smaller than its H.264 rung; none listed", video_id)
                return
            folders = [rendition.name for rendition in av1]
            await self.media.add_ladder_files(
                video, await loop.run_in_executor(None, rung_files, scratch, folders)
            )
            # Read again under the edit lock: a track added meanwhile (subtitles, audio) stays listed.
            async with self.locks(video.id) if self.locks else contextlib.nullcontext():
                presentation = await self.media.read_presentation(video)
                if presentation is None or not wants_av1(await self.videos.get(video_id), hls_path):
                    log.info("video %s: AV1 rungs dropped, its ladder changed meanwhile", video_id)
                    return
                listed = presentation.without_videos(AV1_CODEC).with_videos(av1)
                await self.media.write_presentation(video, listed)
        except Locked as err:
            raise RetryableError(str(err)) from err
        except StorageUnavailable as err:
            raise RetryableError(str(err)) from err
        await self.videos.list_codecs(video_id, hls_path, [H264_CODEC, AV1_CODEC], self.clock())
        if len(av1) < len(made):
            log.info("video %s: %d of %d AV1 rungs listed (the others were larger than H.264)",
                     video_id, len(av1), len(made))  # fmt: skip

    @staticmethod
    def _transcoding(ctx: JobContext) -> bool:
        """A transcode job runs in this process (a new ladder: first playable waits on it)."""
        return any(running.type.name == TRANSCODE for running in ctx.queue.running.values())

    async def _wait_for_transcodes(self, ctx: JobContext) -> None:
        """Start the encode only once no transcode runs here (the lease is renewed meanwhile)."""
        while self._transcoding(ctx):
            if ctx.stopped.is_set():
                raise JobStopped(ctx.stop_reason)
            await asyncio.sleep(YIELD_CHECK_S)

    async def _make_way(self, ctx: JobContext) -> None:
        """While the encode runs: when a transcode starts here, stop it and hand the job back to the
        queue (as at a shutdown: queued again at once, the attempt not counted); it waits for the
        transcode before it encodes again."""
        while not self._transcoding(ctx):
            await asyncio.sleep(YIELD_CHECK_S)
        log.info("an AV1 encode makes way for a transcode; it is queued again")
        ctx.stop(SHUTDOWN)

    def _events(self, ctx: JobContext) -> Any:
        """The worker's progress, onto the job (staff see it move)."""
        tasks: set[asyncio.Task[None]] = set()

        def sink(kind: str, value: Any) -> None:
            if kind == "progress":
                task = asyncio.get_running_loop().create_task(ctx.progress(int(value)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        return sink

    @staticmethod
    async def _stop_on_request(ctx: JobContext, scratch: Any) -> None:
        """When the queue asks the job to stop, ask the worker (the cancel file it looks for)."""
        await ctx.stopped.wait()
        with contextlib.suppress(OSError):
            (scratch / CANCEL_FILE).write_text(ctx.stop_reason or "cancelled")

    async def on_failed(self, job: dict[str, Any], error: str) -> None:
        log.warning("video %s keeps its H.264 ladder alone: %s", job["payload"]["video_id"], error)
