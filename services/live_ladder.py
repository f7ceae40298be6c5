"""A growing ladder in object storage: what FFmpeg has finished reaches the store while it still encodes.

On local storage the ladder grows below MEDIA_ROOT and is served from there. With an object store the
runner's scratch folder is on one machine only, so while FFmpeg writes, `LiveLadderUpload` copies its
whole segments and then its playlists to the ladder's final prefix, every half second. Any API node then
serves the growing ladder from the store (through the edge), and the publish at the end sends only what
is left: the final VOD playlists, the master with measured sizes, the thumbnail and the storyboard.

Order is what keeps a player from asking for a segment that is not there yet:
- the playlists are read BEFORE the folder is listed, so every segment a playlist read lists is whole
  (FFmpeg renames a segment into place before it adds it to the playlist) and is in the listing;
- segments are stored before the playlists read with them;
- the master is stored only once every rung playlist it names is stored; only then is the video
  announced playable.
A failed store call is logged and tried again on the next round; it never fails the transcode (the
publish at the end is the one that must succeed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from core.storage import StorageBackend, StorageUnavailable, files_below

log = logging.getLogger("videoflix.transcode")

SEGMENT = re.compile(r"^\d{2,4}p/seg_\d+\.ts$")  # a whole segment (FFmpeg's unfinished ones end in .tmp)
MASTER = "master.m3u8"


def playlist_uris(text: str) -> list[str]:
    """The URI lines of a playlist."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


class LiveLadderUpload:
    """Copies a growing ladder folder to `prefix` in the store until stopped; announces it playable."""

    def __init__(
        self,
        storage: StorageBackend,
        folder: Path,
        prefix: str,
        announce: Callable[[str, Any], Awaitable[None]],
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
        self.task: asyncio.Task | None = None

    def start(self) -> None:
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
        for path in [*sorted(self.folder.glob("*p/index.m3u8")), self.folder / MASTER]:
            with contextlib.suppress(FileNotFoundError):
                rel = path.relative_to(self.folder).as_posix()
                data = path.read_bytes()
                if self.playlists.get(rel) != data:
                    playlists[rel] = data
        segments = [
            (path, rel)
            for path, rel in files_below(self.folder)
            if SEGMENT.match(rel) and rel not in self.segments
        ]
        return playlists, segments

    async def sync(self) -> None:
        """One round: new segments, then the playlists read before them, the master last."""
        playlists, segments = await asyncio.get_running_loop().run_in_executor(None, self._read)

        async def put(path: Path, rel: str) -> None:
            async with self.gate:
                await self.storage.put_file(path, self.prefix + rel)
            self.segments.add(rel)

        try:
            async with asyncio.TaskGroup() as group:
                for path, rel in segments:
                    group.create_task(put(path, rel))
        except BaseExceptionGroup as failed:
            first = failed.exceptions[0]
            raise first from first.__cause__
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
