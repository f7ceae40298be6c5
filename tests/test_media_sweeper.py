"""Leftover media: unfinished ladders and uploads, and forgotten videos' folders, are swept; others never."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from bson import ObjectId

from services.media_sweeper import MediaSweeper

DAY = 24 * 3600


def put(path: Path, size: int = 100, age_s: float = 0) -> Path:
    """A file of `size` bytes last changed `age_s` ago (its folders too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    when = time.time() - age_s
    for item in (path, *path.parents):
        os.utime(item, (when, when))
        if item.name == "videos":
            break
    return path


async def test_stale_leftovers_are_removed_and_referenced_folders_kept_whole(db, tmp_path, caplog):
    videos = tmp_path / "videos"
    kept = ObjectId()
    await db.videos.insert_one({"_id": kept, "source": f"videos/{kept}/source", "status": "ready"})
    put(videos / str(kept) / "source", age_s=DAY)
    put(videos / str(kept) / "hls" / "360p" / "index.m3u8", age_s=DAY)
    put(videos / str(kept) / ".hls-tmp-1-abc" / "360p" / "seg_000.ts", size=1000, age_s=DAY)
    put(videos / str(kept) / ".source.part-1a2b", size=500, age_s=DAY)
    forgotten = put(videos / str(ObjectId()) / "source", size=2000, age_s=DAY).parent
    in_flight = put(videos / str(ObjectId()) / "source", size=3000, age_s=10).parent

    caplog.set_level(logging.INFO, logger="videoflix.media")
    swept = await MediaSweeper(db.videos, tmp_path, grace_s=3600).sweep()

    assert (swept.count, swept.bytes) == (3, 1000 + 500 + 2000)
    assert sorted(p.name for p in (videos / str(kept)).iterdir()) == ["hls", "source"]
    assert (videos / str(kept) / "hls" / "360p" / "index.m3u8").is_file()
    assert not forgotten.exists()
    assert (in_flight / "source").is_file()  # an upload still being written has no document yet
    assert "media sweep removed 3 leftover(s), 3500 bytes" in caplog.text


async def test_a_folder_a_document_points_into_is_never_removed_however_old(db, tmp_path):
    videos = tmp_path / "videos"
    folder = ObjectId()
    # an admin-inserted video whose files sit in another video's folder
    await db.videos.insert_one({"_id": ObjectId(), "hls_path": f"videos/{folder}/hls/master.m3u8"})
    put(videos / str(folder) / "hls" / "master.m3u8", age_s=30 * DAY)
    swept = await MediaSweeper(db.videos, tmp_path, grace_s=60).sweep()
    assert swept.count == 0
    assert (videos / str(folder) / "hls" / "master.m3u8").is_file()


async def test_fresh_temporary_folders_of_a_running_transcode_are_kept(db, tmp_path):
    video = ObjectId()
    await db.videos.insert_one({"_id": video, "status": "processing"})
    ladder = put(tmp_path / "videos" / str(video) / ".hls-tmp-1-abc" / "seg_000.ts", age_s=5)
    swept = await MediaSweeper(db.videos, tmp_path, grace_s=3600).sweep()
    assert swept.count == 0 and ladder.is_file()
