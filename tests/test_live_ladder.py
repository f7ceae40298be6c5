"""The growing ladder's copy to the store: segments before the playlists that list them, the master only
once every rung it names is there, the video announced once; a store that fails is tried again."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from core.storage import LocalStorage, StorageUnavailable
from services.media.live import LiveLadderUpload

PREFIX = "videos/65a000000000000000000001/hls-1-abc/"
MASTER = "#EXTM3U\n" + "".join(f"#EXT-X-STREAM-INF:BANDWIDTH={h}\n{h}p/index.m3u8\n" for h in (120, 360))


def playlist(*segments: str) -> str:
    lines = ["#EXTM3U", "#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-TARGETDURATION:4"]
    for name in segments:
        lines += ["#EXTINF:4.0,", name]
    return "\n".join(lines) + "\n"


class RecordingStorage(LocalStorage):
    """A local store that records what is stored, in order, and fails while told to."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.stored: list[str] = []
        self.down = False

    async def put_file(self, path: Path, key: str) -> None:
        if self.down:
            raise StorageUnavailable("The media store is unavailable.")
        await LocalStorage.put_bytes(self, key, path.read_bytes())
        self.stored.append(key.removeprefix(PREFIX))

    async def put_bytes(self, key: str, data: bytes) -> None:
        if self.down:
            raise StorageUnavailable("The media store is unavailable.")
        await super().put_bytes(key, data)
        self.stored.append(key.removeprefix(PREFIX))


def ladder(tmp_path: Path) -> tuple[Path, RecordingStorage]:
    folder = tmp_path / "scratch"
    for rung in ("120p", "360p"):
        (folder / rung).mkdir(parents=True)
    return folder, RecordingStorage(tmp_path / "store")


async def test_segments_are_stored_before_the_playlists_that_list_them(tmp_path):
    folder, storage = ladder(tmp_path)
    live = LiveLadderUpload(storage, folder, PREFIX, lambda *a: asyncio.sleep(0))
    (folder / "120p" / "seg_00000.ts").write_bytes(b"a" * 188)
    (folder / "120p" / "seg_00001.ts.tmp").write_bytes(b"unfinished")
    (folder / "120p" / "index.m3u8").write_text(playlist("seg_00000.ts"))
    await live.sync()
    assert storage.stored == ["120p/seg_00000.ts", "120p/index.m3u8"]  # never the unfinished one
    assert (tmp_path / "store" / PREFIX / "120p" / "index.m3u8").read_text() == playlist("seg_00000.ts")

    await live.sync()
    assert storage.stored == ["120p/seg_00000.ts", "120p/index.m3u8"]  # nothing changed: nothing sent

    (folder / "120p" / "seg_00001.ts.tmp").rename(folder / "120p" / "seg_00001.ts")
    (folder / "120p" / "index.m3u8").write_text(playlist("seg_00000.ts", "seg_00001.ts"))
    await live.sync()
    assert storage.stored[2:] == ["120p/seg_00001.ts", "120p/index.m3u8"]


async def test_the_master_waits_for_every_rung_playlist_it_names_and_the_video_is_announced_once(tmp_path):
    folder, storage = ladder(tmp_path)
    announced: list = []

    async def announce(key: str, value: object) -> None:
        announced.append((key, value))

    live = LiveLadderUpload(storage, folder, PREFIX, announce)
    live.want_playable({"renditions": [{"height": 120}]})
    (folder / "120p" / "seg_00000.ts").write_bytes(b"a")
    (folder / "120p" / "index.m3u8").write_text(playlist("seg_00000.ts"))
    (folder / "master.m3u8").write_text(MASTER)  # 360p's playlist is not there yet
    await live.sync()
    assert "master.m3u8" not in storage.stored and announced == []

    (folder / "360p" / "seg_00000.ts").write_bytes(b"b")
    (folder / "360p" / "index.m3u8").write_text(playlist("seg_00000.ts"))
    await live.sync()
    assert storage.stored[-1] == "master.m3u8"
    assert storage.stored.index("360p/index.m3u8") < storage.stored.index("master.m3u8")
    assert announced == [(PREFIX + "master.m3u8", {"renditions": [{"height": 120}]})]
    await live.sync()
    assert len(announced) == 1


async def test_a_store_that_fails_is_tried_again_and_the_copy_catches_up(tmp_path, caplog):
    folder, storage = ladder(tmp_path)
    caplog.set_level(logging.INFO, logger="videoflix.transcode")
    live = LiveLadderUpload(storage, folder, PREFIX, lambda *a: asyncio.sleep(0), interval_s=0.02)
    storage.down = True
    (folder / "120p" / "seg_00000.ts").write_bytes(b"a")
    (folder / "120p" / "index.m3u8").write_text(playlist("seg_00000.ts"))
    live.start()
    await asyncio.sleep(0.1)
    assert storage.stored == []
    assert "does not reach the store (trying on)" in caplog.text
    assert caplog.text.count("does not reach the store") == 1  # said once, not every round
    storage.down = False
    await asyncio.sleep(0.1)
    await live.stop()
    assert storage.stored == ["120p/seg_00000.ts", "120p/index.m3u8"]
    assert "reaches the store" in caplog.text and live.task.done()
