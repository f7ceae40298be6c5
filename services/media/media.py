"""The media module: where a video's bytes live, who checks their URLs, and every move between them.

One object, built from the settings by the composition root (`build_media`), holds the store (a
backend of core/storage: MEDIA_ROOT on disk, or an S3 bucket) and the edge (none, nginx secure_link,
presigned S3). Nothing else holds them or asks which kind they are: catalogue, transcoding, publishing,
uploads, the sweeper, the grants and the stream handlers ask this module.

Scratch is the local working folder of a transcode, below MEDIA_ROOT (`videos/<id>/.hls-tmp-<run>/`).
On local storage it lies in the store's own folder, so publishing is one rename; with an object store
it is this machine's, so the publish job runs on this node (`publish_node`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cachetools import LRUCache

from core.config import MediaSettings, Settings
from core.edge import NginxEdge, S3Edge
from core.errors import Forbidden, NotFound
from core.storage import (
    CONTENT_TYPES,
    LocalStorage,
    ObjectMissing,
    S3Storage,
    StorageBackend,
    StorageUnavailable,
    file_chunks,
    files_below,
)
from models.videos import Video
from services.media import keys
from services.media.live import Announce, LiveLadder, LiveLadderInPlace, LiveLadderUpload, put_files
from services.media.serving import (
    AUTHORISING,
    GROWING_PLAYLIST,
    Body,
    Located,
    Redirect,
    ladder_file,
    local_answer,
)
from services.media.uploads import FileBytes, ObjectBytes, UploadBytes
from transcode.presentation import Presentation

Edge = NginxEdge | S3Edge
DEFAULT_ROOT = "media"
FOLDER_CACHE = 4096
STORE_CHUNK = 8 * 1024 * 1024  # bytes read at a time when an upload moves into an object store
PUBLISH_CONCURRENCY = 8  # files stored at once while a ladder is published
INVALID_LINK = "The stream link is invalid or has expired."


class ScratchMissing(Exception):
    """The scratch ladder of a run is not on this machine (swept, or its disk wiped)."""


@dataclass(frozen=True)
class Ladder:
    """A published ladder: its prefix (``videos/<id>/hls-<run>/``), and whether it has a storyboard and
    a DASH manifest (a CMAF ladder has; an MPEG-TS one, made before, has not)."""

    prefix: str
    storyboard: bool
    dash: bool = False


def media_root(configured: str | None) -> Path:
    """MEDIA_ROOT as an absolute path: a relative one is taken beside server.py; none is `media`."""
    root = Path(configured or DEFAULT_ROOT)
    return root if root.is_absolute() else Path(__file__).resolve().parents[2] / root


def build_storage(settings: Settings, root: Path) -> StorageBackend:
    """The store the settings choose: `media.storage` local (MEDIA_ROOT, `root`) or s3 (the s3 section)."""
    if settings.media.storage == "s3":
        return S3Storage.from_settings(settings.s3)
    return LocalStorage(root)


def build_edge(settings: Settings, storage: StorageBackend) -> Edge | None:
    """Who checks the URLs below a master playlist: nginx's secure_link, presigned S3 URLs, or this
    process (none)."""
    media = settings.media
    if media.edge == "nginx":
        return NginxEdge(media.edge_base_url, media.edge_secret or "", media.edge_window_s)
    if media.edge == "s3":
        return S3Edge(storage, settings.server.secret_key or "", media.edge_window_s)
    return None


def build_media(settings: Settings) -> Media:
    """The media module the settings describe: MEDIA_ROOT, the store and the edge."""
    root = media_root(settings.media.root)
    storage = build_storage(settings, root)
    return Media(storage, build_edge(settings, storage), root, settings.media)


async def remove_tree(folder: Path) -> None:
    """rmtree off the IOLoop: a ladder holds hundreds of segment files."""
    await asyncio.get_running_loop().run_in_executor(None, lambda: shutil.rmtree(folder, ignore_errors=True))


class Media:
    """Every byte of every video: scratch, sources, live mirroring, publish, delete and `locate`."""

    def __init__(
        self, storage: StorageBackend, edge: Edge | None, root: Path, settings: MediaSettings | None = None
    ) -> None:
        self.storage = storage
        self.edge = edge
        self.root = root.resolve()
        self.settings = settings or MediaSettings()  # read live: accel_redirect may change (bench)
        # Local storage keeps the store's files below MEDIA_ROOT: scratch and store share a file system.
        self.in_place = storage.local_path(keys.VIDEOS) is not None
        self._folders: LRUCache[str, Path | None] = LRUCache(FOLDER_CACHE)

    async def start(self) -> None:
        """Open the store (and check that it answers)."""
        await self.storage.start()

    async def close(self) -> None:
        """Release the store's connections."""
        await self.storage.close()

    # --- scratch: this machine's folders below MEDIA_ROOT -------------------------------------

    def video_dir(self, video_id: Any) -> Path:
        """A video's folder below MEDIA_ROOT (its files on local storage, its scratch with a store)."""
        return self.root / keys.video_prefix(video_id).rstrip("/")

    def upload_path(self, video_id: Any) -> Path:
        """Where an upload is streamed to."""
        return self.root / keys.source_key(video_id)

    def scratch_ladder(self, video_id: Any, run: str) -> Path:
        """The folder a transcode run writes its ladder to."""
        return self.video_dir(video_id) / keys.scratch_name(run)

    def relative(self, path: Path) -> str:
        """A path below MEDIA_ROOT as stored in MongoDB."""
        return str(path.resolve().relative_to(self.root))

    def resolve(self, stored: str) -> Path:
        """A stored path (relative to MEDIA_ROOT, or absolute as an admin may insert it)."""
        path = Path(stored)
        return path if path.is_absolute() else self.root / path

    def free_bytes(self) -> int:
        """Free space on MEDIA_ROOT's file system."""
        self.root.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(self.root).free

    async def remove_video(self, video_id: Any) -> None:
        """Delete a video's folder below MEDIA_ROOT (an upload that did not become a video; scratch)."""
        await remove_tree(self.video_dir(video_id))

    def upload_bytes(self) -> UploadBytes:
        """Where the bytes of resumable uploads wait: the shared media root with local storage, the
        store's own multipart parts otherwise, so any API process continues any upload."""
        return FileBytes(self) if self.in_place else ObjectBytes(self.storage, self)

    def publish_node(self, node: str) -> str | None:
        """The node a run's publish must run on: any (None) when scratch lies in the shared store's
        folder, else this one, which holds the scratch."""
        return None if self.in_place else node

    # --- sources ------------------------------------------------------------------------------

    async def keep_source(self, video_id: Any, path: Path, *, stored: bool = False) -> str:
        """Put a finished upload (a file below MEDIA_ROOT) where sources live; what the video stores.
        `stored`: the store holds it already (a resumable upload's parts), `path` is a copy to probe."""
        if self.in_place:
            return self.relative(path)
        if stored:
            return keys.source_key(video_id)
        key = keys.source_key(video_id)
        await self.storage.put_stream(key, file_chunks(path, STORE_CHUNK))
        await remove_tree(path.parent)
        return key

    async def fetch_source(self, video_id: Any, stored: str) -> Path:
        """The source as a local file: where it lies on disk, else fetched into scratch. ObjectMissing
        when it is gone; StorageUnavailable when the store fails."""
        if stored and not stored.startswith("/") and not self.in_place:
            if not await self.storage.exists(stored):
                raise ObjectMissing("The source file is missing.")
            return await self.storage.download(stored, self.video_dir(video_id) / keys.SOURCE)
        source = self.resolve(stored)
        if not stored or not source.is_file():
            raise ObjectMissing("The source file is missing.")
        return source

    # --- live mirroring, publish, delete ------------------------------------------------------

    def live_ladder(self, video_id: Any, run: str, announce: Announce) -> LiveLadder:
        """What serves a run's ladder while it grows; `announce(master, value)` makes the video playable."""
        scratch = self.scratch_ladder(video_id, run)
        if self.in_place:
            return LiveLadderInPlace(self.relative(scratch / keys.MASTER), announce)
        return LiveLadderUpload(self.storage, scratch, keys.ladder_prefix(video_id, run), announce)

    async def publish(self, video_id: Any, run: str) -> Ladder:
        """Put a run's whole ladder where players get it; safe to call again after a failure.

        Local storage: one rename of the scratch folder into place (atomic on one file system). An
        object store: every file under the run's prefix (segments the live mirror stored are skipped),
        the rung playlists after their segments, the master last. Nothing names the prefix as a
        finished ladder until the caller points the video at it."""
        scratch = self.scratch_ladder(video_id, run)
        prefix = keys.ladder_prefix(video_id, run)
        if self.in_place:
            final = self.video_dir(video_id) / keys.ladder_name(run)
            await asyncio.get_running_loop().run_in_executor(None, move_into_place, scratch, final)
            return Ladder(prefix, (final / keys.STORYBOARD).is_file(), (final / keys.MANIFEST).is_file())
        if not scratch.is_dir():
            raise ScratchMissing(str(scratch))
        await self._store_ladder(scratch, prefix)
        return Ladder(prefix, (scratch / keys.STORYBOARD).is_file(), (scratch / keys.MANIFEST).is_file())

    async def _store_ladder(self, scratch: Path, prefix: str) -> None:
        stored = set(await self.storage.list_keys(prefix))
        files = await asyncio.get_running_loop().run_in_executor(None, files_below, scratch)
        manifests = (".m3u8", ".mpd")
        first = [
            (path, rel)
            for path, rel in files
            if not rel.endswith(manifests)
            # what the live mirror stored is whole; an init segment (tiny) is stored again all the same
            and not (keys.SEGMENT.match(rel) and not rel.endswith(keys.INIT) and prefix + rel in stored)
        ]
        await put_files(self.storage, first, prefix, asyncio.Semaphore(PUBLISH_CONCURRENCY))
        playlists = [(path, rel) for path, rel in files if rel.endswith(".m3u8") and rel != keys.MASTER]
        last = [(path, rel) for path, rel in files if rel == keys.MANIFEST]  # beside the master
        for path, rel in [*playlists, *last, (scratch / keys.MASTER, keys.MASTER)]:
            await self.storage.put_file(path, prefix + rel)

    async def read_text(self, key: str) -> str:
        """A small text file of a published ladder (a playlist, the MPD). ObjectMissing when absent."""
        return (await self.storage.read_bytes(key)).decode()

    async def retire(self, video_id: Any, run: str) -> None:
        """Once the video names run's ladder: drop its other ladders (older ones, leftovers of a runner
        that died mid-upload) and the run's scratch. A store that fails leaves them for the next time."""
        video = keys.video_prefix(video_id)
        with contextlib.suppress(StorageUnavailable):
            found = await self.storage.list_keys(video)
            folders = {key[len(video) :].split("/")[0] for key in found}
            for folder in folders - {keys.ladder_name(run)}:
                if keys.is_ladder(folder):
                    await self.storage.delete_prefix(f"{video}{folder}/")
        await remove_tree(self.scratch_ladder(video_id, run))
        await self.release_source(video_id)

    async def release_source(self, video_id: Any) -> None:
        """With an object store: drop this machine's copy of the source once no run here needs it, and
        the video's scratch folder once nothing else is in it. Only the source: an audio track may be
        being received or encoded beside it (services/audio_tracks.py) the moment a ladder is published."""
        scratch = self.video_dir(video_id)
        if self.in_place or any(keys.is_scratch(p.name) for p in scratch.glob(".*")):
            return

        def release() -> None:
            (scratch / keys.SOURCE).unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # not empty (or gone): left as it is
                scratch.rmdir()

        await asyncio.get_running_loop().run_in_executor(None, release)

    async def discard(self, video_id: Any, run: str) -> None:
        """A run that will not be published: its scratch and whatever of it reached the store."""
        await remove_tree(self.scratch_ladder(video_id, run))
        with contextlib.suppress(StorageUnavailable):  # else the next publish's `retire` removes it
            await self.storage.delete_prefix(keys.ladder_prefix(video_id, run))

    async def delete_video(self, video_id: Any) -> None:
        """Every file and object of a video, and its scratch on this machine."""
        await self.storage.delete_prefix(keys.video_prefix(video_id))
        await self.remove_video(video_id)

    # --- a finished ladder's presentation: tracks added and taken away without encoding again ---

    async def read_presentation(self, video: Video) -> Presentation | None:
        """The record the manifests of the ladder a video is played from are written from; None for a
        ladder that has none (MPEG-TS ladders made before CMAF, a video with no ladder yet)."""
        if video.playable_path is None or video.dash_path is None:
            return None
        try:
            data = await self.storage.read_bytes(f"{video.ladder_folder}/{keys.PRESENTATION}")
            return Presentation.from_json(data)
        except (ObjectMissing, ValueError):
            return None

    async def add_ladder_files(self, video: Video, files: list[tuple[Path, str]]) -> None:
        """Files made for a finished ladder (an added track's, the AV1 rungs') stored beside it, each
        `(local path, name inside the ladder)`: segments first, then playlists, so nothing names a
        file that is not there. Listed only once `write_presentation` says so."""
        prefix = video.ladder_folder + "/"
        first = [(path, rel) for path, rel in files if not rel.endswith(".m3u8")]
        await put_files(self.storage, first, prefix, asyncio.Semaphore(PUBLISH_CONCURRENCY))
        for path, rel in files:
            if rel.endswith(".m3u8"):
                await self.storage.put_file(path, prefix + rel)

    async def put_ladder_bytes(self, video: Video, rel: str, data: bytes) -> None:
        """One small file of a finished ladder (a subtitle segment, chapters.vtt) written as a whole."""
        await self.storage.put_bytes(f"{video.ladder_folder}/{rel}", data)

    async def remove_ladder_folder(self, video: Video, folder: str) -> None:
        """A track's folder inside the ladder (``subs-<id>``, ``audio-<id>``), once no manifest lists it."""
        if not re.fullmatch(rf"{keys.RENDITION}|{keys.SUBTITLES}", folder) or folder in ("audio",):
            raise ValueError(f"not a track folder: {folder!r}")
        await self.storage.delete_prefix(f"{video.ladder_folder}/{folder}/")

    async def write_presentation(self, video: Video, presentation: Presentation) -> None:
        """The record and the two manifests written from it; the master last, as players read it
        first. The callers serialise changes to one video (a job per video, a lock)."""
        folder = video.ladder_folder
        await self.storage.put_bytes(f"{folder}/{keys.PRESENTATION}", presentation.to_json().encode())
        await self.storage.put_bytes(f"{folder}/{keys.MANIFEST}", presentation.mpd_text().encode())
        await self.storage.put_bytes(f"{folder}/{keys.MASTER}", presentation.master_text().encode())
        self._folders.pop(video.playable_path or "", None)

    # --- subtitle tracks as uploaded, kept beside the ladders (a new ladder gets them again) ----

    async def keep_track(self, video_id: Any, track_id: str, text: str) -> str:
        """Keep a track's cleaned WebVTT beside the ladders (a retranscode's ladder gets it too)."""
        key = keys.track_source_key(video_id, track_id)
        await self.storage.put_bytes(key, text.encode())
        return key

    async def read_track(self, video_id: Any, track_id: str) -> str:
        """A kept track's WebVTT."""
        return (await self.storage.read_bytes(keys.track_source_key(video_id, track_id))).decode()

    async def drop_track(self, video_id: Any, track_id: str) -> None:
        """Forget a kept track file."""
        with contextlib.suppress(StorageUnavailable):
            await self.storage.delete_prefix(keys.track_folder(video_id, track_id))

    # --- added audio tracks' files as uploaded, kept beside the ladders (any node encodes them) ---

    async def keep_audio_track(self, video_id: Any, track_id: str, path: Path) -> str:
        """Keep an added audio track's uploaded file (a file below MEDIA_ROOT, moved) where every node
        reads it: a new ladder gets the track encoded again from it. Its key."""
        key = keys.audio_track_source_key(video_id, track_id)
        local = self.storage.local_path(key) if self.in_place else None
        if local is not None:

            def move() -> None:
                local.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, local)

            await asyncio.get_running_loop().run_in_executor(None, move)
        else:
            await self.storage.put_stream(key, file_chunks(path, STORE_CHUNK))
        await remove_tree(path.parent)
        return key

    async def fetch_audio_track(self, video_id: Any, track_id: str, scratch: Path) -> Path:
        """A kept audio track's file as a local file: where it lies on disk, else fetched into
        `scratch`. ObjectMissing when it is gone; StorageUnavailable when the store fails."""
        key = keys.audio_track_source_key(video_id, track_id)
        if not await self.storage.exists(key):
            raise ObjectMissing("The audio track's file is missing.")
        local = self.storage.local_path(key) if self.in_place else None
        if local is not None:
            return local
        return await self.storage.download(key, scratch / keys.SOURCE)

    async def drop_audio_track(self, video_id: Any, track_id: str) -> None:
        """Forget a kept audio track's file (left for the video's deletion if the store fails)."""
        with contextlib.suppress(StorageUnavailable):
            await self.storage.delete_prefix(keys.audio_track_folder(video_id, track_id))

    # --- serving ------------------------------------------------------------------------------

    async def course_spec_master(self, video: Video, height: int, base_url: str) -> Body | None:
        """What a course-spec player, which plays one rung's playlist and nothing else, gets for it
        when the rung holds the picture alone (CMAF: the sound is a rendition of its own): a master
        of that one rung and the audio group, at URLs under the stream grant `base_url`, which need no
        header. None for a ladder whose rungs carry their own sound (MPEG-TS): the rung's playlist is
        served as it is."""
        path = video.playable_path
        if path is None:
            raise NotFound()
        try:
            text = (await self.storage.read_bytes(path)).decode()
        except (ObjectMissing, ValueError) as err:  # ValueError: a path that is no media key
            raise NotFound() from err
        master = one_rung_master(text, keys.rung_playlist(height), base_url)
        return Body(master, CONTENT_TYPES[".m3u8"], AUTHORISING) if master is not None else None

    async def locate(self, video: Video, name: str, *, course_spec: bool = False) -> Located:
        """How to answer for one file of the ladder a video is played from: a local file, a redirect to
        the edge, or the master playlist rewritten for it. `course_spec`: asked with the token header
        (an edge that checks its own URLs still gets the request when the bytes are in a store)."""
        if not keys.LADDER_FILE.match(name):
            raise NotFound()
        edge = self.edge
        to_edge = edge is not None and (edge.ladders_in_store or (video.is_finished and not course_spec))
        if edge is not None and to_edge:
            folder = video.ladder_folder
            if name not in (keys.MASTER, keys.MANIFEST) or course_spec:
                return Redirect(edge.url(folder, name))
            text = (await self.storage.read_bytes(f"{folder}/{name}")).decode()
            if name == keys.MANIFEST:  # like the master, the authorisation point: rewritten for the edge
                return Body(edge.manifest(text, folder), CONTENT_TYPES[".mpd"], AUTHORISING)
            return Body(edge.master(text, folder), CONTENT_TYPES[".m3u8"], AUTHORISING)
        path = video.playable_path
        folder_path = self._ladder_dir(path) if path else None
        if folder_path is None or ladder_file(folder_path, name) is None:
            raise NotFound()
        growing = not video.is_finished
        return local_answer(folder_path, name, growing, self.settings.accel_redirect, self.root)

    def _ladder_dir(self, stored: str) -> Path | None:
        """The folder of a stored playlist path, resolved once (segment requests ask for it again and
        again); None when it leads outside MEDIA_ROOT."""
        if stored not in self._folders:
            base = self.root
            candidate = (base / os.path.dirname(stored)).resolve() if "\x00" not in stored else base
            inside = candidate != base and base in candidate.parents
            self._folders[stored] = candidate if inside else None
        return self._folders[stored]

    async def edge_playlist(
        self, token: str, expires: int, video_id: str, ladder: str, rendition: str
    ) -> Body:
        """A rendition's playlist (``720p``, ``audio``) from the object store, its init and media
        segments presigned for the window the URL names: the token (not a user) authorises it, so one
        cached copy serves every viewer."""
        edge = self.edge
        if not isinstance(edge, S3Edge):
            raise NotFound()
        folder = f"{keys.VIDEOS}/{video_id}/{ladder}"
        if not edge.check(token, expires, folder):
            raise Forbidden(INVALID_LINK)
        name = f"{rendition}/index.m3u8"
        if not keys.RENDITION_PLAYLIST.match(name):
            raise NotFound()
        text = (await self.storage.read_bytes(f"{folder}/{name}")).decode()
        if "#EXT-X-ENDLIST" in text:
            control = f"public, max-age={max(0, expires - int(time.time()))}"
        else:  # a ladder still being made: players reload it for the next segments
            control = GROWING_PLAYLIST
        return Body(edge.variant(text, folder, name, expires), CONTENT_TYPES[".m3u8"], control)

    def edge_url(self, video: Video, name: str) -> str | None:
        """The URL the edge serves a file of a finished ladder at; None when this server serves it."""
        if self.edge is None or not video.is_finished:
            return None
        return self.edge.url(video.ladder_folder, name)

    def edge_tokens(self) -> NginxEdge | None:
        """The token maker behind the edge's playlist URLs (for tools and tests)."""
        edge = self.edge
        return edge.tokens if isinstance(edge, S3Edge) else edge


def move_into_place(scratch: Path, final: Path) -> None:
    """Blocking: rename a scratch ladder into place; done already when only the final folder is there."""
    if scratch.is_dir():
        try:
            os.replace(scratch, final)
        except OSError as err:
            raise StorageUnavailable(
                f"Could not publish a ladder in the media folder: {err.strerror}."
            ) from err
    elif not final.is_dir():
        raise ScratchMissing(str(scratch))


RENDITION_GROUPS = re.compile(r"^#EXT-X-MEDIA:.*TYPE=(AUDIO|SUBTITLES)")
URI = re.compile(r'URI="([^"]+)"')
MASTER_HEADER = ("#EXTM3U", "#EXT-X-VERSION", "#EXT-X-INDEPENDENT-SEGMENTS")


def one_rung_master(master: str, playlist: str, base_url: str) -> str | None:
    """A master playlist cut to one rung and its audio (and subtitle) groups, every URI made absolute under
    `base_url`; None when the master names no audio group or not that rung."""
    lines = master.splitlines()
    groups = [
        URI.sub(lambda m: f'URI="{base_url}/{m.group(1)}"', line)
        for line in lines
        if RENDITION_GROUPS.match(line)
    ]
    variant = [
        [line, f"{base_url}/{playlist}"]
        for line, following in zip(lines, [*lines[1:], ""], strict=True)
        if line.startswith("#EXT-X-STREAM-INF:") and following.strip() == playlist
    ]
    if not any("TYPE=AUDIO" in line for line in groups) or not variant:
        return None
    header = [line for line in lines if line.startswith(MASTER_HEADER)]
    return "\n".join([*header, *groups, *variant[0]]) + "\n"
