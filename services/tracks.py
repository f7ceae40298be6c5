"""Tracks added to a published ladder without encoding anything: subtitles and chapters.

A subtitle upload is read and cleaned (transcode/subtitles.py), kept as WebVTT beside the ladders
(`videos/<id>/tracks/<track>/`), and written into the ladder the video plays from as a rendition of
its own: `subs/<track>/index.m3u8` over one WebVTT segment per video segment, and
`subs/<track>/subtitles.vtt` whole (the MPD's text AdaptationSet and the JSON's `url`). The master
playlist and the MPD are then rewritten to list exactly the video's tracks; no picture or sound is
touched. Each upload gets a new track id, so a replaced track's files have new names and no cache
serves the old ones.

Rules: only a ready video with a CMAF ladder takes tracks (409 otherwise: a video still being made
has no final segments to align to; an MPEG-TS ladder made before CMAF has no MPD, and is
retranscoded first). One track per language (a new upload replaces it); at most one default.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bson import ObjectId

from core.clock import Clock
from core.config import MediaSettings
from core.errors import Conflict, InvalidField, NotFound
from models.users import User
from models.videos import READY, Chapter, SubtitleTrack, Video, Videos
from services.catalogue import CatalogueService
from services.grants import Grants
from services.media import Media, keys
from transcode import subtitles
from transcode.cmaf import boxes
from transcode.subtitles import Listed, SubtitleError

log = logging.getLogger("videoflix.tracks")

NOT_READY = "Tracks can be added once the video is ready."
NOT_CMAF = (
    "This video's ladder was made before CMAF (MPEG-TS, no DASH manifest); retranscode it to add tracks."
)
EXTINF = re.compile(r"#EXTINF:([\d.]+),")
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


@dataclass(frozen=True)
class Timeline:
    """What a subtitle track is aligned to: the ladder's segment durations (its first rung's
    playlist, every rung cut at the same instants) and the 90 kHz value of its presentation 0."""

    durations: tuple[float, ...]
    mpegts: int


def first_decode_time(init: bytes, segment: bytes) -> tuple[int, int]:
    """(tfdt of the segment's first fragment, the track's timescale)."""
    timescale = decode_time = 0
    for kind, start, _ in boxes(init):
        if kind == b"mdhd":
            at = start + (20 if init[start] else 12)
            timescale = int.from_bytes(init[at : at + 4], "big")
    for kind, start, _ in boxes(segment):
        if kind == b"tfdt":
            wide = segment[start] == 1
            decode_time = int.from_bytes(segment[start + 4 : start + (12 if wide else 8)], "big")
            break
        if kind == b"mdat":
            break
    return decode_time, timescale


class TracksService:
    """Subtitles and chapters of a video: what handlers ask, and the manifests rewritten after."""

    def __init__(
        self,
        videos: Videos,
        media: Media,
        grants: Grants,
        catalogue: CatalogueService,
        settings: MediaSettings,
        clock: Clock,
    ) -> None:
        self.videos = videos
        self.catalogue = catalogue
        self.media = media
        self.grants = grants
        self.settings = settings
        self.clock = clock
        self._locks: dict[ObjectId, asyncio.Lock] = {}

    @asynccontextmanager
    async def _editing(self, video_id: ObjectId) -> AsyncIterator[None]:
        """One edit of a video's tracks at a time (in this process): each rewrites the manifests."""
        lock = self._locks.setdefault(video_id, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and not lock._waiters:
                self._locks.pop(video_id, None)

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
        self._check_ladder(video)
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
        text = subtitles.vtt_text(cues)
        track_id = str(ObjectId())
        async with self._editing(video.id):
            video = await self._video(video_id)
            self._check_ladder(video)
            source = await self.media.keep_track(video.id, track_id, text)
            new = SubtitleTrack(track_id, tag, label, default, source)
            replaced = [t for t in video.subtitles if t.language == tag]
            tracks = [
                SubtitleTrack(t.id, t.language, t.label, t.default and not default, t.source)
                for t in video.subtitles
                if t.language != tag
            ] + [new]
            timeline = await self._timeline(video)
            await self._write_track(video, new, cues, timeline)
            updated = await self._publish(video, tracks)
            for old in replaced:
                await self._forget(video, old)
        log.info(
            "video %s: subtitles %s (%s) added by %s, %d cues", video.id, tag, track_id, user.id, len(cues)
        )
        [view] = [v for v in self.views(updated, user) if v.id == track_id]
        return view

    async def delete_subtitles(self, video_id: str, track_id: str) -> None:
        """Remove one subtitle track: from the manifests first, then its files."""
        async with self._editing(ObjectId(video_id) if ObjectId.is_valid(video_id) else ObjectId()):
            video = await self._video(video_id)
            gone = [t for t in video.subtitles if t.id == track_id]
            if not gone:
                raise NotFound()
            await self._publish(video, [t for t in video.subtitles if t.id != track_id])
            await self._forget(video, gone[0])

    def _check_ladder(self, video: Video) -> None:
        if video.status != READY or not video.hls_path:
            raise Conflict(NOT_READY)
        if not video.dash_path:
            raise Conflict(NOT_CMAF)

    async def _timeline(self, video: Video) -> Timeline:
        """The segment durations of the ladder's first rung, and where its presentation 0 lies."""
        rung = min((r.height for r in video.renditions), default=None)
        if rung is None:
            raise Conflict(NOT_READY)
        playlist = (await self.media.read_ladder_file(video, f"{rung}p/index.m3u8")).decode()
        durations = tuple(float(d) for d in EXTINF.findall(playlist))
        init = await self.media.read_ladder_file(video, f"{rung}p/init.mp4")
        first = re.search(r"^(seg_\d{5}\.m4s)$", playlist, re.M)
        if first is None or not durations:
            raise Conflict(NOT_CMAF)
        segment = await self.media.read_ladder_file(video, f"{rung}p/{first.group(1)}")
        decode_time, timescale = first_decode_time(init, segment)
        return Timeline(durations, subtitles.mpegts(decode_time, timescale))

    async def _write_track(
        self, video: Video, track: SubtitleTrack, cues: Sequence[subtitles.Cue], timeline: Timeline
    ) -> None:
        segments, playlist = subtitles.segment(cues, timeline.durations, timeline.mpegts)
        folder = keys.subtitles_folder(track.id)
        files = {f"{folder}/{subtitles.segment_name(n)}": text for n, text in enumerate(segments, start=1)}
        files[f"{folder}/{subtitles.WHOLE}"] = subtitles.vtt_text(cues)
        files[f"{folder}/index.m3u8"] = playlist
        await self.media.write_ladder_files(video, files)

    async def _publish(self, video: Video, tracks: Sequence[SubtitleTrack]) -> Video:
        """Rewrite the MPD, then the master (the authorisation point, last) to list `tracks`; then the
        document. The updated video."""
        listed = [Listed(keys.subtitles_folder(t.id), t.language, t.label, t.default) for t in tracks]
        master = (await self.media.read_ladder_file(video, keys.MASTER)).decode()
        mpd = (await self.media.read_ladder_file(video, keys.MANIFEST)).decode()
        await self.media.write_ladder_files(
            video,
            {
                keys.MANIFEST: subtitles.mpd_with_subtitles(mpd, listed),
                keys.MASTER: subtitles.master_with_subtitles(master, listed),
            },
        )
        updated = await self.videos.set_subtitles(video.id, tracks, self.clock())
        if updated is None:
            raise NotFound()
        return updated

    async def _forget(self, video: Video, track: SubtitleTrack) -> None:
        await self.media.delete_ladder_folder(video, keys.subtitles_folder(track.id))
        await self.media.drop_track(video.id, track.id)

    # --- chapters -----------------------------------------------------------------------------

    async def set_chapters(self, video_id: str, chapters: Sequence[tuple[float, str]]) -> Video:
        """Set a video's chapters (start seconds, title): sorted, unique, within its duration; an
        empty list removes them. Served as JSON and as a WebVTT chapters file in its ladder."""
        async with self._editing(ObjectId(video_id) if ObjectId.is_valid(video_id) else ObjectId()):
            video = await self._video(video_id)
            if chapters:
                self._check_ladder(video)
            duration = video.duration or 0.0
            starts = [start for start, _ in chapters]
            if starts != sorted(starts) or len(set(starts)) != len(starts):
                raise InvalidField("chapters", "Chapter starts must be in increasing order, each once.")
            if any(start >= duration for start in starts):
                raise InvalidField(
                    "chapters", f"Every chapter starts before the video's end ({duration:.3f} s)."
                )
            listed = [Chapter(round(start, 3), " ".join(title.split())) for start, title in chapters]
            path = None
            if listed:
                path = keys.chapters_file(secrets.token_hex(8))
                text = subtitles.chapters_vtt([subtitles.Chapter(c.start, c.title) for c in listed], duration)
                await self.media.write_ladder_files(video, {path: text})
            updated = await self.videos.set_chapters(video.id, listed, path, self.clock())
            if updated is None:
                raise NotFound()
            if video.chapters_path and video.chapters_path != path:
                folder = video.chapters_path.rsplit("/", 1)[0]
                await self.media.delete_ladder_folder(video, folder)
            return updated
