"""Media left behind by crashes: removed at start and hourly, never a folder a video still references.

Under MEDIA_ROOT/videos/ a folder belongs to the video whose id is its name (services/media/keys.py).
Three kinds of leftovers: scratch ladders (`.hls-tmp-*`: a killed transcode's, or an encoded ladder
whose publish never succeeded), uploads a killed request was writing (`.*.part*`), and whole folders of
videos whose document is gone. Each is removed once nothing in it changed for a grace period (an upload
in flight has no document yet and keeps writing; a publish retries well within it). A folder a document
references is never removed; only its temporary entries are. With an object store MEDIA_ROOT holds only
this node's scratch, swept the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bson import ObjectId

from services.media.keys import is_scratch

log = logging.getLogger("videoflix.media")

HOUR_S = 3600.0


@dataclass
class Swept:
    """What one sweep removed."""

    count: int = 0
    bytes: int = 0


def is_temporary(name: str) -> bool:
    """A ladder or an upload being written: `.hls-tmp-<run>`, `.<name>.part[-<hex>]`."""
    return is_scratch(name) or (name.startswith(".") and ".part" in name)


def last_change(path: Path) -> float:
    """The newest modification time of a file or of anything in a folder (without following links)."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for folder, dirs, files in os.walk(path):
            for name in dirs + files:
                with contextlib.suppress(OSError):
                    newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
    return newest


def size_of(path: Path) -> int:
    """Bytes of a file or of every file in a folder."""
    if not path.is_dir() or path.is_symlink():
        return path.lstat().st_size
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def referenced_ids(docs: list[dict[str, Any]]) -> set[str]:
    """The folder names the video documents reference: their ids, and any stored path `videos/<id>/...`."""
    found: set[str] = set()
    for doc in docs:
        found.add(str(doc["_id"]))
        for value in doc.values():
            if isinstance(value, str) and value.startswith("videos/"):
                found.add(value.split("/")[1])
    return found


def sweep_folder(root: Path, referenced: set[str], grace_s: float, now: float) -> Swept:
    """Blocking: remove stale leftovers under root/videos/ (run in an executor)."""
    swept = Swept()
    videos = root / "videos"
    if not videos.is_dir():
        return swept

    def drop(path: Path) -> None:
        with contextlib.suppress(OSError):
            if now - last_change(path) < grace_s:
                return
            size = size_of(path)
            remove(path)
            swept.count += 1
            swept.bytes += size

    for folder in videos.iterdir():
        if folder.name not in referenced:
            drop(folder)
            continue
        if folder.is_dir() and not folder.is_symlink():
            for entry in folder.iterdir():
                if is_temporary(entry.name):
                    drop(entry)
    return swept


class MediaSweeper:
    """Removes the media no video references, at start and then every hour, on a lasting database."""

    def __init__(self, videos: Any, root: Path, *, grace_s: float, interval_s: float = HOUR_S) -> None:
        self.videos = videos  # the videos collection
        self.root = root
        self.grace_s = grace_s
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def sweep(self) -> Swept:
        """One sweep; logs what it removed."""
        docs = await self.videos.find({}, {"renditions": 0}).to_list(None)
        referenced = referenced_ids(docs)
        # ids are compared as text: a folder named like no ObjectId is no video's
        referenced = {name for name in referenced if ObjectId.is_valid(name)}
        swept = await asyncio.get_running_loop().run_in_executor(
            None, sweep_folder, self.root, referenced, self.grace_s, time.time()
        )
        if swept.count:
            log.info("media sweep removed %d leftover(s), %d bytes", swept.count, swept.bytes)
        return swept

    def start(self) -> None:
        """Sweep now and every interval on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="media-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # a database hiccup: try again next time
                log.exception("media sweep failed")
            await asyncio.sleep(self.interval_s)
