"""Audio tracks staff add to a ready CMAF video (another language): checked when uploaded, encoded once
by an `audio_track` job onto the ladder's timeline, and listed by the presentation record, so that the
HLS master gains an `EXT-X-MEDIA TYPE=AUDIO` rendition and the MPD an audio AdaptationSet — with nothing
else encoded again.

The uploaded file is kept in the media store (`videos/<id>/tracks/audio-<id>/source`): the job fetches it
from there on whichever node runs it, and a retranscode's new ladder gets every added track again (the
publish job's `after_publish` calls `AudioTracks.restore`, which queues the encodes). Deleting the track
or the video removes it.

The source's own sound stays the ladder's first audio rendition (`audio/`): it is not listed among
`audio_tracks` and cannot be removed; an added track made the default takes the default from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from bson import ObjectId
from pydantic import Field

from core.clock import Clock, utcnow
from core.config import MediaSettings, TranscodeSettings
from core.errors import Conflict, InvalidField, Locked, NotFound, TooLarge
from core.storage import ObjectMissing, StorageUnavailable
from core.validation import Body
from models.db import object_id
from models.videos import READY, AudioTrack, Video, Videos
from services.jobs import JobContext, JobQueue, JobType, PermanentError, RetryableError
from services.media import Media, remove_tree
from transcode.audio import NoAudio, TrackSpec, audio_duration, encode_track
from transcode.cmaf import read_rendition
from transcode.ffmpeg import ffmpeg_binary
from transcode.manifests import measure
from transcode.pool import TranscodePool
from transcode.presentation import AudioTrack as ListedTrack

log = logging.getLogger("videoflix.audio_tracks")

AUDIO_TRACK = "audio_track"
MIB = 1024 * 1024
FORM_OVERHEAD = MIB
MAX_OFFSET_S = 1.0  # an added track may last this much more or less than the video
PROCESSING, FAILED = "processing", "failed"

# BCP 47, as players match it: a primary language subtag and optional subtags (en, pt-BR, zh-Hant-TW).
Language = Annotated[
    str,
    Field(
        min_length=2,
        max_length=35,
        pattern=r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$",
        description="BCP 47 language tag (en, de, pt-BR).",
    ),
]


class AudioTrackFields(Body):
    """What staff send with an audio track's file."""

    language: Language
    label: str = Field("", max_length=100, description="The name players show; empty: the language.")
    default: bool = Field(False, description="Players start with this track.")


def track_key(track_id: str) -> str:
    return f"{AUDIO_TRACK}:{track_id}"


def track_work(track_id: str) -> str:
    """The folder, in the video's folder below MEDIA_ROOT, where a track's file is received and later
    encoded: named as a temporary entry (`.<name>.part`), which the media sweeper removes once stale
    (a process killed mid-upload or mid-encode)."""
    return f".track-{track_id}.part"


def folder_of(track_id: str) -> str:
    """The track's rendition folder inside the ladder."""
    return f"audio-{track_id}"


@dataclass
class TrackIngest:
    """Where one uploaded audio file goes: the handler streams into `path`, at most `limit_bytes`."""

    video: Video
    track_id: str
    path: Path
    limit_bytes: int

    async def discard(self) -> None:
        await remove_tree(self.path.parent)


class AudioTracks:
    """Adds and removes a ready video's audio tracks."""

    def __init__(
        self,
        videos: Videos,
        media: Media,
        queue: JobQueue,
        settings: MediaSettings,
        transcode: TranscodeSettings,
        locks: EditLock,
        clock: Clock = utcnow,
    ) -> None:
        self.locks = locks
        self.videos = videos
        self.media = media
        self.queue = queue
        self.settings = settings
        self.transcode = transcode
        self.clock = clock

    async def ready_video(self, video_id: str) -> Video:
        """The video tracks are added to: NotFound, or Conflict unless its CMAF ladder is ready."""
        oid = object_id(video_id)
        video = await self.videos.get(oid) if oid else None
        if video is None:
            raise NotFound()
        if video.status != READY or not video.dash_path or video.duration is None:
            raise Conflict("Audio tracks can be added to a ready video with a CMAF ladder only.")
        return video

    async def open_ingest(self, video_id: str, declared: int) -> TrackIngest:
        """Check the video and the declared size; where the file goes."""
        video = await self.ready_video(video_id)
        limit = self.settings.max_upload_mb * MIB
        if declared > limit + FORM_OVERHEAD:
            raise TooLarge(f"The upload is larger than the limit of {self.settings.max_upload_mb} MB.")
        track_id = str(ObjectId())
        path = self.media.video_dir(video.id) / track_work(track_id) / "source"
        path.parent.mkdir(parents=True, exist_ok=True)
        return TrackIngest(video, track_id, path, limit + FORM_OVERHEAD)

    async def add(self, ingest: TrackIngest, fields: AudioTrackFields) -> AudioTrack:
        """Check the file (an audio stream FFmpeg reads, within 1 s of the video's length) and queue its
        encode; whatever is refused leaves no file behind."""
        try:
            if ingest.path.stat().st_size == 0:
                raise InvalidField("file", "The submitted file is empty.")
            seconds = await self._duration(ingest.path)
            length = ingest.video.duration or 0.0
            if abs(seconds - length) > MAX_OFFSET_S:
                raise InvalidField(
                    "file",
                    f"The audio lasts {seconds:.1f} s and the video {length:.1f} s: an audio track must "
                    f"be within {MAX_OFFSET_S:g} s of the video's length.",
                )
            if await self.media.read_presentation(ingest.video) is None:
                raise Conflict("Audio tracks can be added to a ready video with a CMAF ladder only.")
        except BaseException:
            await ingest.discard()
            raise
        try:
            await self.media.keep_audio_track(ingest.video.id, ingest.track_id, ingest.path)
        except BaseException:
            await ingest.discard()
            raise
        track = AudioTrack(
            id=ingest.track_id,
            language=fields.language,
            label=fields.label.strip() or fields.language,
            default=fields.default,
            status=PROCESSING,
        )
        await self.videos.add_audio_track(ingest.video.id, track, self.clock())
        await self.queue_encode(ingest.video.id, track.id)
        return track

    async def queue_encode(self, video_id: ObjectId, track_id: str) -> None:
        """Queue a track's encode; any node running `audio_track` jobs fetches the kept file."""
        await self.queue.enqueue(
            AUDIO_TRACK, {"video_id": video_id, "track_id": track_id}, key=track_key(track_id)
        )

    async def restore(self, video: Video) -> None:
        """Once a new ladder is published (a retranscode): every added track encoded again from its kept
        file onto it, shown `processing` until it is listed again. A failed track stays failed."""
        again = [t for t in video.audio_tracks if t.status != FAILED]
        for track in again:
            await self.videos.set_audio_track(
                video.id, track.id, {"status": PROCESSING, "error": None}, self.clock()
            )
            await self.queue_encode(video.id, track.id)
        if again:
            log.info("video %s: %d audio track(s) queued for its new ladder", video.id, len(again))

    async def _duration(self, path: Path) -> float:
        """The file's audio length, read off the IOLoop; 400 when it has no audio FFmpeg reads."""
        ffmpeg = self.transcode.ffmpeg or ffmpeg_binary()
        try:
            return await asyncio.get_running_loop().run_in_executor(
                None,
                lambda: audio_duration(ffmpeg, str(path), timeout_s=self.settings.probe_timeout_s),
            )
        except NoAudio as err:
            raise InvalidField("file", str(err)) from err

    async def remove(self, video_id: str, track_id: str) -> None:
        """Take a track out of the manifests, then its files; its encode, if running, finds it gone."""
        oid = object_id(video_id)
        video = await self.videos.get(oid) if oid else None
        if video is None or not any(t.id == track_id for t in video.audio_tracks):
            raise NotFound()
        async with self.locks(video.id):
            presentation = await self.media.read_presentation(video)
            if presentation is not None:
                await self.media.write_presentation(video, presentation.without_audio(folder_of(track_id)))
                with contextlib.suppress(ValueError):
                    await self.media.remove_ladder_folder(video, folder_of(track_id))
            await self.videos.remove_audio_track(video.id, track_id, self.clock())
        await self.media.drop_audio_track(video.id, track_id)


# One edit of a video's presentation at a time in this process (read, change, write): the same lock as
# the subtitle tracks' (services/tracks.py `LadderTracks.editing`), as both rewrite the manifests.
EditLock = Callable[[ObjectId], AbstractAsyncContextManager[None]]


class AudioTrackJobs(JobType):
    """`audio_track` jobs: encode an added track in the pool, store it beside the ladder, list it."""

    name = AUDIO_TRACK
    title = "Adding the audio track"

    def __init__(
        self,
        videos: Videos,
        media: Media,
        pool: TranscodePool,
        settings: TranscodeSettings,
        *,
        encode_settings: Callable[[], Any],
        locks: EditLock,
        clock: Clock = utcnow,
    ) -> None:
        self.locks = locks
        self.videos = videos
        self.media = media
        self.pool = pool
        self.settings = settings
        self.encode_settings = encode_settings
        self.clock = clock

    async def run(self, ctx: JobContext) -> None:
        video_id, track_id = ctx.payload["video_id"], str(ctx.payload["track_id"])
        video = await self.videos.get(video_id)
        track = next((t for t in video.audio_tracks if t.id == track_id), None) if video else None
        if video is None or track is None or video.duration is None:
            return  # the video or the track was removed meanwhile (its kept file with it)
        work = self.media.video_dir(video.id) / track_work(track_id)
        try:
            await self._encode(video, track, work)
        finally:
            await remove_tree(work)

    async def _encode(self, video: Video, track: AudioTrack, work: Path) -> None:
        try:
            source = await self.media.fetch_audio_track(video.id, track.id, work)
        except ObjectMissing as err:
            raise PermanentError("The audio track's file is gone; add the track again.") from err
        except StorageUnavailable as err:
            raise RetryableError(str(err)) from err
        duration = video.duration or 0.0
        scratch = work / folder_of(track.id)
        spec = TrackSpec(
            ffmpeg=self.settings.ffmpeg or ffmpeg_binary(),
            source=str(source),
            folder=str(scratch),
            settings=self.encode_settings(),
            duration=duration,
            timeout_s=self.settings.timeout_base_s + self.settings.timeout_factor * duration,
            nice=self.settings.nice,
        )
        try:
            outcome = await self.pool.call(encode_track, spec)
        except Exception as err:
            raise RetryableError("The transcoding process died.") from err
        if outcome.error:
            raise PermanentError(outcome.error)
        peak, average = measure(scratch / "index.m3u8")
        rendition = read_rendition(scratch, list(outcome.segments), peak, average)
        files = [
            (path, f"{scratch.name}/{path.name}") for path in sorted(scratch.iterdir()) if path.is_file()
        ]
        try:
            async with self.locks(video.id):
                # read again: the ladder may be a new one (a retranscode), which the files go into
                fresh = await self.videos.get(video.id)
                if fresh is None or not any(t.id == track.id for t in fresh.audio_tracks):
                    return
                presentation = await self.media.read_presentation(fresh)
                if presentation is None:
                    raise PermanentError("The video's ladder changed; add the audio track again.")
                await self.media.add_ladder_files(fresh, files)
                listed = ListedTrack(
                    rendition, language=track.language, label=track.label, default=track.default
                )
                await self.media.write_presentation(fresh, presentation.with_audio(listed))
                await self.videos.set_audio_track(
                    fresh.id, track.id, {"status": READY, "error": None}, self.clock()
                )
        except (OSError, StorageUnavailable) as err:
            raise RetryableError(f"Storing the audio track failed: {err}") from err
        except Locked as err:  # another edit of the manifests held them too long: later
            raise RetryableError(str(err)) from err
        log.info("video %s: audio track %s (%s) added", video.id, track.id, track.language)

    async def on_failed(self, job: dict[str, Any], error: str) -> None:
        payload = job["payload"]
        await self.videos.set_audio_track(
            payload["video_id"], str(payload["track_id"]), {"status": FAILED, "error": error}, self.clock()
        )

    async def on_requeued(self, job: dict[str, Any]) -> None:
        payload = job["payload"]
        await self.videos.set_audio_track(
            payload["video_id"], str(payload["track_id"]), {"status": PROCESSING, "error": None}, self.clock()
        )
