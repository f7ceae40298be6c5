"""Live mirroring: a growing ladder is served while FFmpeg still writes it (services/media owns this).

On local storage the ladder grows below MEDIA_ROOT and is served from there (`LiveLadderInPlace`). With
an object store the runner's scratch folder is on one machine only, so while FFmpeg writes,
`LiveLadderUpload` copies its whole segments and then its playlists to the ladder's final prefix, every
half second. Any API node then serves the growing ladder from the store (through the edge), and the
publish job at the end sends only what is left: the final VOD playlists, the master with measured
sizes, the thumbnail and the storyboard.

Order is what keeps a player from asking for a segment that is not there yet:
- the playlists are read BEFORE the folder is listed, so every segment a playlist read lists is whole
  (FFmpeg renames a segment into place before it adds it to the playlist) and is in the listing;
- segments (and init segments) are stored before the playlists read with them;
- the master is stored only once every rung playlist it names is stored; only then is the video
  announced playable.
A failed store call is logged and tried again on the next round; it never fails the transcode (the
publish job is the one that must succeed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from core.storage import StorageBackend, StorageUnavailable, files_below
from services.media.keys import INIT, MASTER, SEGMENT

log = logging.getLogger("videoflix.transcode")

Announce = Callable[[str, Any], Coroutine[Any, Any, None]]


URI_ATTRIBUTE = re.compile(r'URI="([^"]*)"')


def playlist_uris(text: str) -> list[str]:
    """The URIs of a playlist: its URI lines, and its tags' URI attributes (a master's audio group)."""
    uris = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            uris += URI_ATTRIBUTE.findall(stripped)
        elif stripped:
            uris.append(stripped)
    return uris


class LiveLadderInPlace:
    """Local storage: the ladder grows below MEDIA_ROOT, where it is served from; announcing it is all."""

    def __init__(self, master_key: str, announce: Announce) -> None:
        self.master_key = master_key
        self.announce = announce
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Nothing to copy."""

    def want_playable(self, value: Any) -> None:
        """The worker wrote the provisional master: the video plays from the scratch folder now."""
        task = asyncio.get_running_loop().create_task(self.announce(self.master_key, value))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def stop(self) -> None:
        """Let the announcement land before the outcome's writes."""
        if self.tasks:
            await asyncio.wait(list(self.tasks))

    async def catch_up(self) -> None:
        """Nothing to copy: the whole ladder is where it is served."""


class LiveLadderUpload:
    """Copies a growing ladder folder to `prefix` in the store until stopped; announces it playable."""

    def __init__(
        self,
        storage: StorageBackend,
        folder: Path,
        prefix: str,
        announce: Announce,
        *,
        interval_s: float = 0.5,
        concurrency: int = 8,
    ) -> None:
        self.storage = storage
        self.folder = folder
        self.prefix = prefix
        self.announce = announce  # called once with the master's key and the worker's renditions
        self.interval_s = interval_s
        self.gate = asyncio.Semaphore(concurrency)
        self.segments: set[str] = set()  # relative paths of the segments stored
        self.playlists: dict[str, bytes] = {}  # relative path -> the content stored
        self.playable: Any = None  # what the worker said when the ladder became playable
        self.announced = False
        self.failing = False
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Copy every half second from now on."""
        self.task = asyncio.get_running_loop().create_task(self._run())

    def want_playable(self, value: Any) -> None:
        """The worker wrote the provisional master: store it and announce the video as soon as it is."""
        self.playable = value if value is not None else {}
        self.wake.set()

    async def stop(self) -> None:
        """Stop copying (the encode is over); what is stored stays (the publish goes on from it)."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def catch_up(self) -> None:
        """Once the encode is whole: one last round, so that the video plays until it is published (a
        store that fails now leaves that to the publish job)."""
        try:
            await self.sync()
        except StorageUnavailable as err:
            log.warning("the whole ladder did not reach the store before its publish: %s", err)

    async def _run(self) -> None:
        while True:
            try:
                await self.sync()
                if self.failing:
                    log.info("the growing ladder reaches the store %s again", self.prefix)
                self.failing = False
            except StorageUnavailable as err:
                if not self.failing:
                    log.warning("the growing ladder does not reach the store (trying on): %s", err)
                self.failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.interval_s)
            self.wake.clear()

    def _read(self) -> tuple[dict[str, bytes], list[tuple[Path, str]]]:
        """The playlists that changed, then the segments not stored yet (in that order: see above)."""
        playlists = {}
        renditions = [*self.folder.glob("*p/index.m3u8"), *self.folder.glob("audio/index.m3u8")]
        for path in [*sorted(renditions), self.folder / MASTER]:
            with contextlib.suppress(FileNotFoundError):
                rel = path.relative_to(self.folder).as_posix()
                data = path.read_bytes()
                if self.playlists.get(rel) != data:
                    playlists[rel] = data
        # FFmpeg creates a rendition's init.mp4 empty when it starts and fills it just before it lists
        # the first segment: an init segment is whole once a playlist read before it lists one.
        started = {
            rel.split("/")[0] for rel, data in {**self.playlists, **playlists}.items() if b"#EXTINF" in data
        }
        segments = [
            (path, rel)
            for path, rel in files_below(self.folder)
            if SEGMENT.match(rel)
            and rel not in self.segments
            and (not rel.endswith(INIT) or rel.split("/")[0] in started)
        ]
        return playlists, segments

    async def sync(self) -> None:
        """One round: new segments, then the playlists read before them, the master last."""
        playlists, segments = await asyncio.get_running_loop().run_in_executor(None, self._read)

        await put_files(self.storage, segments, self.prefix, self.gate, stored=self.segments.add)
        master = playlists.pop(MASTER, None)
        for rel, data in playlists.items():
            await self.storage.put_bytes(self.prefix + rel, data)
            self.playlists[rel] = data
        if master is not None and all(uri in self.playlists for uri in playlist_uris(master.decode())):
            await self.storage.put_bytes(self.prefix + MASTER, master)
            self.playlists[MASTER] = master
        if self.playable is not None and MASTER in self.playlists and not self.announced:
            self.announced = True
            await self.announce(self.prefix + MASTER, self.playable)


LiveLadder = LiveLadderInPlace | LiveLadderUpload


async def put_files(
    storage: StorageBackend,
    files: list[tuple[Path, str]],
    prefix: str,
    gate: asyncio.Semaphore,
    stored: Callable[[str], None] | None = None,
) -> None:
    """Store local files under `prefix` at once, as many at a time as `gate` lets through; `stored`
    hears of each one stored. The first failure is raised as itself (not as an exception group)."""

    async def put(path: Path, rel: str) -> None:
        async with gate:
            await storage.put_file(path, prefix + rel)
        if stored is not None:
            stored(rel)

    try:
        async with asyncio.TaskGroup() as group:
            for path, rel in files:
                group.create_task(put(path, rel))
    except BaseExceptionGroup as failed:
        first = failed.exceptions[0]
        raise first from first.__cause__
