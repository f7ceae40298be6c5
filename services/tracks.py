"""Tracks added to a published ladder without encoding anything: subtitles and chapters.

A subtitle upload is read and cleaned (transcode/subtitles.py), kept as WebVTT beside the ladders
(`videos/<id>/tracks/<track>/`), and written into the ladder the video plays from as a rendition of
its own: `subs-<track>/index.m3u8` over one WebVTT segment per video segment, and
`subs-<track>/subtitles.vtt` whole (the MPD's text AdaptationSet and the JSON's `url`). The track is
added to the ladder's presentation record (transcode/presentation.py) and the master playlist and the
MPD are written again from it; no picture or sound is touched. Each upload gets a new track id, so a
replaced track's files have new names and no cache serves the old ones.

`LadderTracks` is the ladder side (what is written where, one edit of a video at a time, and the
tracks put into a new ladder after a retranscode: the publish job calls `restore`); `TracksService`
holds the rules handlers call.

Rules: only a ready video with a CMAF ladder takes tracks (409 otherwise: a video still being made
has no final segments to align to; an MPEG-TS ladder made before CMAF has no MPD, and is
retranscoded first). One track per language (a new upload replaces it); at most one default.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bson import ObjectId

from core.clock import Clock
from core.errors import Conflict, InvalidField, Locked, NotFound
from core.storage import ObjectMissing, StorageUnavailable
from models.locks import Leases
from models.users import User
from models.videos import READY, Chapter, SubtitleTrack, Video, Videos
from services.catalogue import CatalogueService
from services.grants import Grants
from services.media import Media, keys
from transcode import subtitles
from transcode.presentation import Presentation, TextTrack
from transcode.subtitles import SubtitleError

log = logging.getLogger("videoflix.tracks")

NOT_READY = "Tracks can be added once the video is ready."
NOT_CMAF = (
    "This video's ladder was made before CMAF (MPEG-TS, no DASH manifest); retranscode it to add tracks."
)
# A well-formed BCP 47 language tag (RFC 5646 §2.1: language, script, region, variants, extensions,
# private use; grandfathered tags aside). Plain groups only: the OpenAPI document shows it as a pattern.
LANGUAGE_PATTERN = (
    r"^(?:[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3}|[A-Za-z]{4,8})"
    r"(?:-[A-Za-z]{4})?"
    r"(?:-(?:[A-Za-z]{2}|[0-9]{3}))?"
    r"(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*"
    r"(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*"
    r"(?:-[Xx](?:-[A-Za-z0-9]{1,8})+)?$"
)
LANGUAGE_TAG = re.compile(LANGUAGE_PATTERN)
MAX_LANGUAGE = 35
STORE_CONCURRENCY = 8  # a track's segment files stored at once (one per video segment)


def language_tag(value: str) -> str:
    """A BCP 47 tag in its conventional case (`pt-BR`, `zh-Hant-TW`); ValueError when not one."""
    if len(value) > MAX_LANGUAGE or LANGUAGE_TAG.match(value) is None:
        raise ValueError(f"{value[:40]!r} is not a BCP 47 language tag (such as en, de-CH or pt-BR).")
    parts = value.split("-")
    out = [parts[0].lower()]
    singleton = False  # after an extension's or private use's singleton, every subtag is lower case
    for index, part in enumerate(parts[1:], start=1):
        singleton = singleton or len(part) == 1
        if not singleton and index == 1 and len(part) == 4 and part.isalpha():
            out.append(part.title())
        elif not singleton and ((len(part) == 2 and part.isalpha()) or (len(part) == 3 and part.isdigit())):
            out.append(part.upper())
        else:
            out.append(part.lower())
    return "-".join(out)


@dataclass(frozen=True)
class SubtitleView:
    """A subtitle track as one user is shown it: its URL under their grant."""

    id: str
    language: str
    label: str
    default: bool
    url: str | None


EDIT_WAIT_S = 30.0  # how long an edit waits for another one on the same video
EDIT_LEASE_S = 120.0  # a holder that died frees the lease after this long


class LadderTracks:
    """The tracks of the ladder a video plays from: written, listed in its manifests, taken away, and
    put into a new ladder after a retranscode."""

    def __init__(
        self, videos: Videos, media: Media, clock: Clock, leases: Leases | None = None, node: str = "node"
    ) -> None:
        self.videos = videos
        self.media = media
        self.clock = clock
        self.leases = leases
        self.node = node
        self._locks: dict[ObjectId, asyncio.Lock] = {}

    @asynccontextmanager
    async def editing(self, video_id: ObjectId) -> AsyncIterator[None]:
        """One edit of a video's manifests at a time, each a read, change and write of its presentation
        record: in this process (a lock), and across every process on the database (a lease in
        MongoDB), so a subtitle edit on an api node and an audio or AV1 job on a transcode node never
        lose each other's change. Locked (423) when another edit holds it for EDIT_WAIT_S."""
        lock = self._locks.setdefault(video_id, asyncio.Lock())
        try:
            async with lock:
                if self.leases is None:
                    yield
                    return
                name, owner = f"ladder:{video_id}", f"{self.node}/{secrets.token_hex(6)}"
                deadline = time.monotonic() + EDIT_WAIT_S
                while not await self.leases.take(name, owner, self.clock(), EDIT_LEASE_S):
                    if time.monotonic() > deadline:
                        raise Locked("Another change to this video's tracks is under way; try again shortly.")
                    await asyncio.sleep(0.1)
                try:
                    yield
                finally:
                    await self.leases.give_back(name, owner)
        finally:
            if not lock.locked() and not lock._waiters:
                self._locks.pop(video_id, None)

    async def record(self, video: Video) -> Presentation:
        """The presentation record of the video's ladder; 409 when it has none: not ready yet, or
        made before CMAF (or before the record)."""
        check_ready(video)
        record = await self.media.read_presentation(video)
        if record is None or not record.videos or not record.videos[0].segments:
            raise Conflict(NOT_CMAF)
        return record

    async def write(
        self, video: Video, track: SubtitleTrack, cues: Sequence[subtitles.Cue], record: Presentation
    ) -> Presentation:
        """A track's files in the ladder: one WebVTT segment per segment of the record's first video
        rendition (every rendition is cut at the same instants), the playlist over them, and the whole
        file; the record with the track (not written yet)."""
        rendition = record.videos[0]
        timescale = rendition.track.timescale
        durations = [duration / timescale for _, _, duration in rendition.segments]
        mpegts = subtitles.mpegts(rendition.segments[0][1], timescale)
        loop = asyncio.get_running_loop()
        try:
            segments, playlist = await loop.run_in_executor(None, subtitles.segment, cues, durations, mpegts)
        except SubtitleError as err:
            raise InvalidField("file", str(err)) from err
        folder = keys.subtitles_folder(track.id)
        files = {f"{folder}/{subtitles.segment_name(n)}": text for n, text in enumerate(segments, start=1)}
        files[f"{folder}/{subtitles.WHOLE}"] = subtitles.vtt_text(cues)
        limit = asyncio.Semaphore(STORE_CONCURRENCY)

        async def put(name: str, text: str) -> None:
            async with limit:
                await self.media.put_ladder_bytes(video, name, text.encode())

        await asyncio.gather(*(put(name, text) for name, text in files.items()))
        await put(f"{folder}/index.m3u8", playlist)  # last: it names the others
        listed = TextTrack(folder, track.language, track.label, track.default, subtitles.WHOLE)
        return record.with_text(listed)

    async def publish(self, video: Video, record: Presentation, tracks: Sequence[SubtitleTrack]) -> Video:
        """The manifests rewritten from the record (the master last), then the document: the updated
        video."""
        await self.media.write_presentation(video, record)
        updated = await self.videos.set_subtitles(video.id, tracks, self.clock())
        if updated is None:
            raise NotFound()
        return updated

    async def forget(self, video: Video, track: SubtitleTrack) -> None:
        """A track no manifest lists any more: its files (left behind if the store fails: they go with
        the ladder)."""
        if video.playable_path is not None:
            with contextlib.suppress(StorageUnavailable):
                await self.media.remove_ladder_folder(video, keys.subtitles_folder(track.id))
        await self.media.drop_track(video.id, track.id)

    async def write_chapters(self, video: Video, chapters: Sequence[Chapter]) -> str:
        """The chapters file in the ladder; its name there."""
        duration = video.duration or 0.0
        text = subtitles.chapters_vtt([subtitles.Chapter(c.start, c.title) for c in chapters], duration)
        await self.media.put_ladder_bytes(video, keys.CHAPTERS, text.encode())
        return keys.CHAPTERS

    async def restore(self, video: Video) -> None:
        """Once a new ladder is published (a retranscode): the video's subtitle tracks and chapters
        written into it from what was kept, and its manifests rewritten. A track whose kept file is
        gone is dropped; a store that fails leaves the ladder without them (logged)."""
        if not video.subtitles and not video.chapters:
            return
        async with self.editing(video.id):
            fresh = await self.videos.get(video.id)
            if fresh is None or fresh.status != READY:
                return
            try:
                await self._restore(fresh)
            except (StorageUnavailable, Conflict) as err:
                log.warning("video %s: its tracks could not be put into the new ladder: %s", video.id, err)

    async def _restore(self, video: Video) -> None:
        record = await self.record(video)
        kept = []
        for track in video.subtitles:
            try:
                text = await self.media.read_track(video.id, track.id)
            except ObjectMissing:
                log.warning("video %s: subtitle track %s was not kept; dropped", video.id, track.id)
                continue
            loop = asyncio.get_running_loop()
            cues = await loop.run_in_executor(None, subtitles.parse, text.encode(), video.duration)
            record = await self.write(video, track, cues, record)
            kept.append(track)
        if video.chapters:
            await self.write_chapters(video, video.chapters)
        await self.publish(video, record, kept)
        log.info("video %s: %d subtitle track(s) put into its new ladder", video.id, len(kept))


def check_ready(video: Video) -> None:
    """Tracks go into a finished ladder only."""
    if video.status != READY or not video.hls_path:
        raise Conflict(NOT_READY)


class TracksService:
    """Subtitles and chapters of a video: the rules handlers call."""

    def __init__(
        self, ladder: LadderTracks, videos: Videos, grants: Grants, catalogue: CatalogueService
    ) -> None:
        self.ladder = ladder
        self.videos = videos
        self.grants = grants
        self.catalogue = catalogue

    async def _video(self, video_id: str) -> Video:
        video = await self.videos.get(video_id)
        if video is None:
            raise NotFound()
        return video

    def views(self, video: Video, user: User) -> list[SubtitleView]:
        """A video's subtitle tracks with their URLs for this user."""
        urls = dict(self.grants.urls(video, user).subtitles)
        return [SubtitleView(t.id, t.language, t.label, t.default, urls.get(t.id)) for t in video.subtitles]

    async def list_subtitles(self, user: User, video_id: str) -> list[SubtitleView]:
        """The subtitle tracks of a video the caller may see."""
        return self.views(await self.catalogue.visible_video(user, video_id), user)

    # --- subtitles ----------------------------------------------------------------------------

    async def add_subtitles(
        self, user: User, video_id: str, data: bytes, language: str, label: str, default: bool
    ) -> SubtitleView:
        """Read, clean and publish a subtitle file as the video's track for `language` (replacing the
        one it had); the new track as the caller sees it."""
        video = await self._video(video_id)
        check_ready(video)
        try:
            tag = language_tag(language.strip())
        except ValueError as err:
            raise InvalidField("language", str(err)) from err
        label = " ".join(label.split()) or tag
        loop = asyncio.get_running_loop()
        try:
            cues = await loop.run_in_executor(None, subtitles.parse, data, video.duration)
        except SubtitleError as err:
            raise InvalidField("file", str(err)) from err
        track_id = str(ObjectId())
        ladder = self.ladder
        async with ladder.editing(video.id):
            video = await self._video(video_id)
            record = await ladder.record(video)
            source = keys.track_source_key(video.id, track_id)
            new = SubtitleTrack(track_id, tag, label, default, source)
            replaced = [t for t in video.subtitles if t.language == tag]
            tracks = [
                SubtitleTrack(t.id, t.language, t.label, t.default and not default, t.source)
                for t in video.subtitles
                if t.language != tag
            ] + [new]
            try:
                record = await ladder.write(video, new, cues, record)
                await ladder.media.keep_track(video.id, track_id, subtitles.vtt_text(cues))
                updated = await ladder.publish(video, record, tracks)
            except BaseException:
                await ladder.forget(video, new)  # nothing names its files: they go
                raise
            for old in replaced:
                await ladder.forget(video, old)
        log.info("video %s: subtitles %s added by %s, %d cues", video.id, tag, user.id, len(cues))
        [view] = [v for v in self.views(updated, user) if v.id == track_id]
        return view

    async def delete_subtitles(self, video_id: str, track_id: str) -> None:
        """Remove one subtitle track: from the manifests first, then its files."""
        video = await self._video(video_id)
        async with self.ladder.editing(video.id):
            video = await self._video(video_id)
            gone = [t for t in video.subtitles if t.id == track_id]
            if not gone:
                raise NotFound()
            kept = [t for t in video.subtitles if t.id != track_id]
            record = await self.ladder.media.read_presentation(video) if video.status == READY else None
            if record is None:  # no ladder lists it now (a retranscode failed): the document alone
                await self.videos.set_subtitles(video.id, kept, self.ladder.clock())
            else:
                await self.ladder.publish(video, record.without_text(keys.subtitles_folder(track_id)), kept)
            await self.ladder.forget(video, gone[0])

    # --- chapters -----------------------------------------------------------------------------

    async def set_chapters(self, video_id: str, chapters: Sequence[tuple[float, str]]) -> Video:
        """Set a video's chapters (start seconds, title): sorted, unique, within its duration; an
        empty list removes them. Served as JSON and as a WebVTT chapters file in its ladder."""
        video = await self._video(video_id)
        async with self.ladder.editing(video.id):
            video = await self._video(video_id)
            if chapters:
                check_ready(video)
            duration = video.duration or 0.0
            starts = [start for start, _ in chapters]
            if starts != sorted(starts) or len(set(starts)) != len(starts):
                raise InvalidField("chapters", "Chapter starts must be in increasing order, each once.")
            if any(start >= duration for start in starts):
                raise InvalidField(
                    "chapters", f"Every chapter starts before the video's end ({duration:.3f} s)."
                )
            listed = [Chapter(round(start, 3), " ".join(title.split())) for start, title in chapters]
            path = await self.ladder.write_chapters(video, listed) if listed else None
            updated = await self.videos.set_chapters(video.id, listed, path, self.ladder.clock())
            if updated is None:
                raise NotFound()
            if not listed and video.chapters_path:  # a URL given out before finds no chapters now
                await self.ladder.media.put_ladder_bytes(video, video.chapters_path, b"WEBVTT\n")
            return updated
