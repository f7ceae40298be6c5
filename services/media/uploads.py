"""Where a resumable upload's bytes wait between PATCHes: somewhere every API process can read them.

- A local store: `MEDIA_ROOT/uploads/<id>.part` on the media root the processes share. A writer starts
  at the committed offset (cutting off whatever a writer that died before its commit left past it).
- An object store: the parts of a multipart upload to the video's source key, plus the bytes that do
  not fill a part yet (S3 refuses parts below 5 MiB but the last) as a small object
  `uploads/<id>/tail`, which the next PATCH, in any process, reads back and continues. Only the first
  `tail` bytes the upload's record names count, so a tail written by a writer that died before its
  commit is harmless; a part stored and never committed is stored again under the same number.

The committed offset (services/uploads.py records it with the lease) is the parts plus the tail.
"""

from __future__ import annotations

import abc
import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from bson import ObjectId

from core.errors import Conflict
from core.storage import StorageBackend
from services.media.keys import source_key

if TYPE_CHECKING:  # the media module builds these stores and hands itself in
    from services.media.media import Media

# A local writer without a checksum commits its offset at least this often (a process that dies keeps
# what it had committed; the rest is cut off by the next writer).
CHECKPOINT_BYTES = 8 * 1024 * 1024
LOST = "The upload's received bytes are missing; delete it and upload again."


class Writer(abc.ABC):
    """One PATCH's bytes on their way: `offset` counts what it received; `save` makes them shared."""

    @property
    @abc.abstractmethod
    def offset(self) -> int:
        """Where the upload ends with what this writer received."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> dict[str, Any] | None:
        """Append; the record's changes when a checkpoint is reached (nothing is committed on hold)."""

    @abc.abstractmethod
    async def save(self, final: bool) -> dict[str, Any]:
        """Make every byte received readable by any process (`final`: as the whole source); the
        record's changes to commit."""

    @abc.abstractmethod
    async def drop(self) -> None:
        """Forget what this writer received (a body whose checksum failed)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the writer's file or buffer."""


class UploadBytes(abc.ABC):
    """The bytes of resumable uploads in one store."""

    # True when the finished source is in the media store already (it is only copied to be probed).
    stored: bool = False

    @abc.abstractmethod
    async def create(self, doc: dict[str, Any]) -> None:
        """Make room for a new upload's bytes."""

    @abc.abstractmethod
    async def open(self, doc: dict[str, Any], hold: bool) -> Writer:
        """A writer at the upload's committed offset; `hold`: no checkpoints (a checksum must vouch)."""

    @abc.abstractmethod
    async def place(self, doc: dict[str, Any], video_id: ObjectId) -> Path:
        """The whole upload as a local file at the video's source path (moved, or copied to probe)."""

    @abc.abstractmethod
    async def discard(self, doc: dict[str, Any]) -> None:
        """Remove every byte of an unfinished upload."""


async def run(func: Any, *args: Any) -> Any:
    """Disk work through a thread: never on the IOLoop."""
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


class FileBytes(UploadBytes):
    """`.part` files on the shared media root."""

    def __init__(self, media: Media) -> None:
        self.media = media
        self.folder = media.root / "uploads"

    def part_path(self, upload_id: ObjectId) -> Path:
        return self.folder / f"{ObjectId(str(upload_id))}.part"

    async def create(self, doc: dict[str, Any]) -> None:
        await run(self._touch, self.part_path(doc["_id"]))

    @staticmethod
    def _touch(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()

    async def open(self, doc: dict[str, Any], hold: bool) -> Writer:
        fd = await run(open_at, self.part_path(doc["_id"]), doc["offset"])
        return FileWriter(fd, doc["offset"], hold)

    async def place(self, doc: dict[str, Any], video_id: ObjectId) -> Path:
        source = self.media.upload_path(video_id)
        await run(lambda: source.parent.mkdir(parents=True, exist_ok=True))
        await run(os.replace, self.part_path(doc["_id"]), source)
        return source

    async def discard(self, doc: dict[str, Any]) -> None:
        await run(lambda: self.part_path(doc["_id"]).unlink(missing_ok=True))


def open_at(path: Path, offset: int) -> BinaryIO:
    """The part file opened for writing at `offset`; bytes past it were never committed and go."""
    try:
        fd = open(path, "r+b")  # noqa: SIM115 (the writer closes it)
    except FileNotFoundError:
        if offset:
            raise Conflict(LOST) from None
        fd = open(path, "w+b")  # noqa: SIM115
    if fd.seek(0, os.SEEK_END) < offset:
        fd.close()
        raise Conflict(LOST)
    fd.truncate(offset)
    fd.seek(offset)
    return fd


class FileWriter(Writer):
    def __init__(self, fd: BinaryIO, start: int, hold: bool) -> None:
        self.fd: BinaryIO | None = fd
        self.start = self.end = self.saved = start
        self.hold = hold

    @property
    def offset(self) -> int:
        return self.end

    async def write(self, data: bytes) -> dict[str, Any] | None:
        await run(self._write, data)
        self.end += len(data)
        if self.hold or self.end - self.saved < CHECKPOINT_BYTES:
            return None
        self.saved = self.end
        return {"offset": self.end}

    def _write(self, data: bytes) -> None:
        assert self.fd is not None
        self.fd.write(data)
        self.fd.flush()  # on the shared disk now, for whichever process continues

    async def save(self, final: bool) -> dict[str, Any]:
        self.saved = self.end
        return {"offset": self.end}

    async def drop(self) -> None:
        if self.fd is not None:
            await run(self.fd.truncate, self.start)
        self.end = self.start

    def close(self) -> None:
        if self.fd is not None:
            self.fd.close()
            self.fd = None


class ObjectBytes(UploadBytes):
    """Multipart parts and a tail object in the bucket; nothing on a local disk until the upload is whole."""

    stored = True

    def __init__(self, storage: StorageBackend, media: Media) -> None:
        self.storage = storage
        self.media = media

    @staticmethod
    def tail_prefix(upload_id: ObjectId) -> str:
        return f"uploads/{ObjectId(str(upload_id))}/"

    async def create(self, doc: dict[str, Any]) -> None:
        """Nothing yet: the multipart upload starts with the first whole part."""

    async def open(self, doc: dict[str, Any], hold: bool) -> Writer:
        tail = b""
        if doc["tail"]:
            tail = (await self.storage.read_bytes(self.tail_prefix(doc["_id"]) + "tail"))[: doc["tail"]]
            if len(tail) < doc["tail"]:
                raise Conflict(LOST)
        return ObjectWriter(self, doc, tail, hold)

    async def place(self, doc: dict[str, Any], video_id: ObjectId) -> Path:
        return await self.storage.download(source_key(video_id), self.media.upload_path(video_id))

    async def discard(self, doc: dict[str, Any]) -> None:
        if doc.get("multipart_id"):
            await self.storage.abort_parts(source_key(doc["new_video_id"]), doc["multipart_id"])
        await self.storage.delete_prefix(self.tail_prefix(doc["_id"]))


class ObjectWriter(Writer):
    def __init__(self, store: ObjectBytes, doc: dict[str, Any], tail: bytes, hold: bool) -> None:
        self.storage = store.storage
        self.tail_key = store.tail_prefix(doc["_id"]) + "tail"
        self.key = source_key(doc["new_video_id"])
        self.begun_with: str | None = doc["multipart_id"]
        self.multipart_id = doc["multipart_id"]
        self.parts: list[dict[str, Any]] = list(doc["parts"])
        self.parts_bytes: int = doc["parts_bytes"]
        self.buffer = bytearray(tail)  # one part at most
        self.hold = hold

    @property
    def offset(self) -> int:
        return self.parts_bytes + len(self.buffer)

    async def write(self, data: bytes) -> dict[str, Any] | None:
        self.buffer += data
        stored = False
        size = self.storage.part_size
        while len(self.buffer) >= size:
            await self._put(bytes(self.buffer[:size]))
            del self.buffer[:size]
            stored = True
        # The bytes still in the buffer are this process's alone: the committed offset stops at the parts.
        return self._state(tail=0) if stored and not self.hold else None

    async def _put(self, data: bytes) -> None:
        if self.multipart_id is None:
            self.multipart_id = await self.storage.begin_parts(self.key)
        number = len(self.parts) + 1
        self.parts.append(await self.storage.put_part(self.key, self.multipart_id, number, data))
        self.parts_bytes += len(data)

    def _state(self, tail: int) -> dict[str, Any]:
        return {
            "offset": self.parts_bytes + tail,
            "tail": tail,
            "parts": self.parts,
            "parts_bytes": self.parts_bytes,
            "multipart_id": self.multipart_id,
        }

    async def save(self, final: bool) -> dict[str, Any]:
        if not final:
            if self.buffer:
                await self.storage.put_bytes(self.tail_key, bytes(self.buffer))
            return self._state(tail=len(self.buffer))
        if self.multipart_id is None:  # smaller than one part: one PUT
            await self.storage.put_bytes(self.key, bytes(self.buffer))
            self.parts_bytes += len(self.buffer)
        else:
            if self.buffer or not self.parts:
                await self._put(bytes(self.buffer))
            await self.storage.complete_parts(self.key, self.multipart_id, self.parts)
        self.buffer.clear()
        await self.storage.delete_prefix(self.tail_key.rsplit("/", 1)[0])
        return {**self._state(tail=0), "multipart_id": None}

    async def drop(self) -> None:
        # Parts stored by this writer are not committed: the next writer stores those numbers again.
        if self.multipart_id is not None and self.begun_with is None:
            await self.storage.abort_parts(self.key, self.multipart_id)
        self.buffer.clear()

    def close(self) -> None:
        self.buffer = bytearray()
