"""The `publish` job: an encoded ladder, whole in scratch, put where players get it.

The transcode job ends with a whole ladder in its scratch folder and queues this job; encoding and
publishing fail and retry apart (as PeerTube's move-to-object-storage job does): a store that is down
retries the publish, with the job queue's back-off, never the encode.

Where it runs: where the scratch is. With an object store the scratch is the transcode node's own
disk, so the job is kept for that node (`only_node`); a restart of the node (same `jobs.node` name)
takes it up again. On local storage the scratch lies in the shared MEDIA_ROOT beside the ladders, so
any process that runs `publish` may rename it into place (one rename: atomic on one file system).
Roles: `transcode` and `all` run it (services/container.py ROLE_JOBS).

Meanwhile the video stays `processing` at 99 %, playable on the growing ladder (now whole); a ready
video being re-made keeps its old ladder. Scratch is kept until the publish succeeds (staff may retry a
failed publish); if it never does, the sweeper removes it after `media.sweep_grace_s`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bson import ObjectId

from core.clock import Clock, utcnow
from core.config import PublishSettings
from core.storage import StorageUnavailable
from models.videos import FAILED, Rendition, Video, Videos
from services.jobs import JobContext, JobQueue, JobStopped, JobType, PermanentError, RetryableError
from services.media import Media, ScratchMissing
from services.media.keys import MANIFEST, MASTER, STORYBOARD, THUMBNAIL

log = logging.getLogger("videoflix.transcode")

PUBLISH = "publish"
# What follows a CMAF ladder's publish: (the queue, the video's id, the video as it was before).
AfterReady = Callable[[JobQueue, ObjectId, Video], Awaitable[None]]
# What a video shows while its encoded ladder waits to be published.
PUBLISHING_PERCENT = 99
GONE = "The encoded ladder is no longer on the machine that made it; retranscode the video."


def publish_key(video_id: ObjectId | str) -> str:
    """The key of a video's one publish job."""
    return f"{PUBLISH}:{video_id}"


def publish_payload(video_id: ObjectId, run: str, renditions: list[dict[str, Any]]) -> dict[str, Any]:
    """What the publish job needs: the run whose scratch holds the ladder, and its renditions."""
    return {"video_id": video_id, "run": run, "renditions": renditions}


class PublishJobs(JobType):
    """Runs `publish` jobs: the media module publishes, then the video points at the new ladder."""

    name = PUBLISH
    title = "Publishing"
    concurrency = 2

    def __init__(
        self,
        videos: Videos,
        media: Media,
        settings: PublishSettings,
        *,
        clock: Clock = utcnow,
        after_ready: AfterReady | None = None,
        after_publish: Sequence[Callable[[Video], Awaitable[None]]] = (),
    ) -> None:
        self.videos = videos
        self.media = media
        self.settings = settings
        self.clock = clock
        self.after_ready = after_ready  # the follow-up of a CMAF ladder (services/av1.py: its AV1 rungs)
        # what a new ladder gets once it is the video's (the tracks added to the one before it)
        self.after_publish = tuple(after_publish)

    async def run(self, ctx: JobContext) -> None:
        video_id, run = ctx.payload["video_id"], ctx.payload["run"]
        before = await self.videos.get(video_id)
        if before is None:
            await self.media.discard(video_id, run)
            raise JobStopped("the video is gone")
        try:
            ladder = await self.media.publish(video_id, run)
        except StorageUnavailable as err:
            raise RetryableError(str(err)) from err
        except ScratchMissing as err:
            raise PermanentError(GONE) from err
        ready = await self.videos.mark_ready(
            video_id,
            self.clock(),
            hls_path=ladder.prefix + MASTER,
            dash_path=ladder.prefix + MANIFEST if ladder.dash else None,
            thumbnail_path=ladder.prefix + THUMBNAIL,
            storyboard_path=ladder.prefix + STORYBOARD if ladder.storyboard else None,
            renditions=[Rendition.from_doc(r) for r in ctx.payload.get("renditions") or []],
        )
        if ready is None:
            await self.media.discard(video_id, run)  # deleted meanwhile
            raise JobStopped("the video is gone")
        for step in self.after_publish:
            await step(ready)
        await self.media.retire(video_id, run)
        log.info("video %s ready: its ladder %s is published", video_id, ladder.prefix)
        if ladder.dash and self.after_ready is not None:  # CMAF: AV1 follows (MPEG-TS: never)
            await self.after_ready(ctx.queue, video_id, before)

    async def _stopped(self, job: dict[str, Any], error: str) -> None:
        """The ladder is not published: the video says why. Its scratch stays for a retry by staff until
        the sweeper's grace period ends."""
        video_id, now = job["payload"]["video_id"], self.clock()
        await self.videos.drop_growing(video_id, now)
        await self.videos.fail(video_id, error, now)

    async def on_failed(self, job: dict[str, Any], error: str) -> None:
        await self._stopped(job, error)

    async def on_cancelled(self, job: dict[str, Any]) -> None:
        await self._stopped(job, "Publishing was cancelled by staff.")

    async def on_requeued(self, job: dict[str, Any]) -> None:
        await self.videos.mark_processing(
            job["payload"]["video_id"], PUBLISHING_PERCENT, self.clock(), if_status=FAILED
        )

    async def on_retry(self, job: dict[str, Any], error: str) -> None:
        log.info("video %s waits to be published (its ladder is kept): %s", job["payload"]["video_id"], error)
