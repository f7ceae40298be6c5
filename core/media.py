"""Where a video's files live under MEDIA_ROOT, and the guarantee that nothing resolves outside it."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from bson import ObjectId
from cachetools import LRUCache

FOLDER_CACHE = 4096


DEFAULT_ROOT = "media"


def media_root(configured: str | None) -> Path:
    """MEDIA_ROOT as an absolute path: a relative one is taken beside server.py; none is `media`."""
    root = Path(configured or DEFAULT_ROOT)
    return root if root.is_absolute() else Path(__file__).resolve().parent.parent / root


def source_key(video_id: ObjectId | str) -> str:
    """The key of a video's uploaded source, the same on every backend (the one place that names it)."""
    return f"videos/{ObjectId(str(video_id))}/source"


class MediaStore:
    """MEDIA_ROOT/videos/<id>/ holds one video: its source upload and its HLS output."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._folders: LRUCache[str, Path | None] = LRUCache(FOLDER_CACHE)

    def video_dir(self, video_id: ObjectId | str) -> Path:
        """The folder of one video (ids are hex: no path tricks possible)."""
        return self.root / "videos" / str(ObjectId(str(video_id)))

    def upload_path(self, video_id: ObjectId) -> Path:
        """Where an upload is streamed to (or a stored source is copied to, to be probed)."""
        return self.root / source_key(video_id)

    def relative(self, path: Path) -> str:
        """A path as stored in MongoDB: relative to MEDIA_ROOT."""
        return str(path.resolve().relative_to(self.root))

    def resolve(self, stored: str) -> Path:
        """A stored path (relative to MEDIA_ROOT, or absolute as an admin may insert it)."""
        path = Path(stored)
        return path if path.is_absolute() else self.root / path

    def inside(self, base: Path, *parts: str) -> Path | None:
        """base/parts if it stays inside base once links and '..' are resolved, else None."""
        if any("\x00" in part for part in parts):
            return None
        base = base.resolve()
        candidate = base.joinpath(*parts).resolve()
        return candidate if candidate == base or base in candidate.parents else None

    def ladder_folder(self, hls_path: str) -> Path | None:
        """The folder of a stored playlist path, resolved once (segment requests ask for it again and
        again); None when it leads outside MEDIA_ROOT."""
        if hls_path not in self._folders:
            self._folders[hls_path] = self.inside(self.root, os.path.dirname(hls_path))
        return self._folders[hls_path]

    def free_bytes(self) -> int:
        """Free space on MEDIA_ROOT's file system."""
        self.root.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(self.root).free

    async def remove_video(self, video_id: ObjectId) -> None:
        """Delete every file of a video (its folder)."""
        await remove_tree(self.video_dir(video_id))


async def remove_tree(folder: Path) -> None:
    """rmtree off the IOLoop: a ladder holds hundreds of segment files."""
    await asyncio.get_running_loop().run_in_executor(None, lambda: shutil.rmtree(folder, ignore_errors=True))
