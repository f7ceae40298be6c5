"""Resumable uploads (tus 1.0.0): the rules. A finished upload becomes a video as a multipart one does.

The bytes in MEDIA_ROOT/uploads/<id>.part are the truth for the offset: whatever reached the disk
before a connection dropped stays, and the client resumes from there. One PATCH at a time writes to
an upload (a lock per upload, in this process); the disk is written through a thread.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import errno
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from bson import ObjectId

from core.clock import Clock
from core.config import MediaSettings
from core.errors import (
    ChecksumMismatch,
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    InsufficientStorage,
    InvalidInput,
    NotFound,
    TooLarge,
)
from models.uploads import Uploads, new_upload
from models.users import User
from services.catalogue import CatalogueService
from services.media import Media

log = logging.getLogger("videoflix.uploads")

MIB = 1024 * 1024
CHECKSUM_ALGORITHMS = {"sha1": hashlib.sha1}
# A PATCH waits this long for the previous one on the same upload (a dropped connection's last write).
LOCK_WAIT_S = 5.0
# A HEAD waits at most this long for a PATCH that is ending, so the offset it reports is settled.
SETTLE_WAIT_S = 2.0
# The periodic sweep looks for stale uploads at most this often.
SWEEP_EVERY_S = 60.0


@dataclass
class Checksum:
    """An `Upload-Checksum` header: the algorithm and the digest the body must have."""

    algorithm: str
    digest: bytes

    @classmethod
    def parse(cls, header: str | None) -> Checksum | None:
        """None without a header; InvalidInput when it is malformed or names another algorithm."""
        if header is None:
            return None
        name, _, value = header.strip().partition(" ")
        if name.lower() not in CHECKSUM_ALGORITHMS:
            raise InvalidInput(f'Unsupported checksum algorithm "{name}"; use sha1.')
        try:
            digest = base64.b64decode(value.strip(), validate=True)
        except binascii.Error as err:
            raise InvalidInput("Upload-Checksum is not base64.") from err
        return cls(name.lower(), digest)


class UploadFiles:
    """The partial files and records of uploads, their write locks, and their removal when stale."""

    def __init__(self, uploads: Uploads, media: Media, clock: Clock) -> None:
        self.uploads = uploads
        self.clock = clock
        self.folder = media.root / "uploads"
        self.locks: dict[ObjectId, asyncio.Lock] = {}

    def part_path(self, upload_id: ObjectId) -> Path:
        return self.folder / f"{ObjectId(str(upload_id))}.part"

    def offset(self, doc: dict[str, Any]) -> int:
        """Bytes received so far: the file on disk (the whole length once it became a video)."""
        if doc.get("video_id"):
            return doc["length"]
        try:
            return self.part_path(doc["_id"]).stat().st_size
        except FileNotFoundError:
            return 0

    def busy(self, upload_id: ObjectId) -> bool:
        """True while a PATCH writes to the upload."""
        lock = self.locks.get(upload_id)
        return lock is not None and lock.locked()

    async def remove(self, doc: dict[str, Any]) -> int:
        """Delete an upload's record and its partial file; the bytes freed."""
        size = 0 if doc.get("video_id") else self.offset(doc)
        self.part_path(doc["_id"]).unlink(missing_ok=True)
        await self.uploads.delete(doc["_id"])
        self.locks.pop(doc["_id"], None)
        return size

    async def expire_stale(self) -> tuple[int, int]:
        """Remove uploads past their expiry (not one a PATCH is writing to); (count, bytes freed)."""
        count = freed = 0
        for doc in await self.uploads.expired(self.clock()):
            if self.busy(doc["_id"]):
                continue
            freed += await self.remove(doc)
            count += 1
        if count:
            log.info("removed %d expired uploads (%d bytes)", count, freed)
        return count, freed


class UploadService:
    """Creates, reports, appends to, finishes and terminates resumable uploads."""

    def __init__(
        self,
        files: UploadFiles,
        media: Media,
        catalogue: CatalogueService,
        settings: MediaSettings,
        clock: Clock,
        free_bytes: Callable[[], int] | None = None,
    ) -> None:
        self.files = files
        self.uploads = files.uploads
        self.media = media
        self.catalogue = catalogue
        self.settings = settings
        self.clock = clock
        self._locks = files.locks
        # Completions that run after their connection dropped (kept so they are not collected).
        self.background: set[asyncio.Task] = set()
        # Free space on MEDIA_ROOT (injectable: tests give a figure instead of filling a disk).
        self.free_bytes = free_bytes or media.free_bytes
        # Creations check the reservations and insert one at a time, so two cannot share the same room.
        self._creating = asyncio.Lock()

    def part_path(self, upload_id: ObjectId) -> Path:
        return self.files.part_path(upload_id)

    def offset(self, doc: dict[str, Any]) -> int:
        return self.files.offset(doc)

    def expires_from(self, now: datetime) -> datetime:
        return now + timedelta(hours=self.settings.upload_expiry_h)

    @property
    def max_bytes(self) -> int:
        return self.settings.max_upload_mb * MIB

    async def expire_stale(self) -> tuple[int, int]:
        """Remove expired uploads; (count, bytes freed)."""
        return await self.files.expire_stale()

    # --- the protocol's steps -------------------------------------------------------------------

    async def create(
        self, user: User, length: int, fields: dict[str, Any], filename: str | None
    ) -> dict[str, Any]:
        """A new, empty upload of `length` bytes; `fields` are the video's title, description, category."""
        if length < 1:
            raise InvalidInput("Upload-Length must be a whole number of bytes greater than 0.")
        if length > self.max_bytes:
            raise TooLarge(f"The upload is larger than the limit of {self.settings.max_upload_mb} MB.")
        if fields.get("category"):
            await self.catalogue.category_by_id_or_slug(fields["category"], "category")
        async with self._creating:
            now = self.clock()
            await self.reserve(user, length, now)
            doc = new_upload(user.id, length, fields, filename, now, self.expires_from(now))
            self.files.folder.mkdir(parents=True, exist_ok=True)
            self.part_path(doc["_id"]).touch()
            await self.uploads.insert(doc)
        log.info("upload %s of %d bytes created by %s", doc["_id"], length, user.id)
        return doc

    async def reserve(self, user: User, length: int, now: datetime) -> None:
        """Refuse a creation past the user's cap of open uploads (403), or one the disk cannot hold once
        every open upload receives the rest of its declared length (507)."""
        unfinished = await self.uploads.unfinished(now)
        cap = self.settings.max_open_uploads
        if sum(1 for doc in unfinished if doc["user_id"] == user.id) >= cap:
            raise Forbidden(
                f"You already have {cap} unfinished uploads, the most one may have; finish or delete "
                "one (DELETE its URL) before starting another."
            )
        # What open uploads have received is on the disk already; the rest is promised to them.
        reserved = sum(max(0, doc["length"] - self.offset(doc)) for doc in unfinished)
        if self.free_bytes() - reserved < length + self.settings.min_free_mb * MIB:
            raise InsufficientStorage("Not enough disk space on the server for this upload.")

    async def find(self, user: User, upload_id: str) -> dict[str, Any]:
        """The caller's upload; another user's is as good as absent."""
        doc = await self.uploads.get(upload_id)
        if doc is None or doc["user_id"] != user.id:
            raise NotFound()
        return doc

    def live(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Gone once expired (until the sweep removes it)."""
        if not doc.get("video_id") and doc["expires_at"] <= self.clock():
            raise Gone("The upload has expired.")
        return doc

    async def status(self, user: User, upload_id: str) -> tuple[dict[str, Any], int]:
        """(upload, offset) for HEAD; waits briefly for a PATCH that is ending so the offset is settled."""
        doc = self.live(await self.find(user, upload_id))
        lock = self._locks.get(doc["_id"])
        if lock is not None and lock.locked():
            # a PATCH still streaming after that: report what is on disk now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hold(lock), SETTLE_WAIT_S)
            doc = await self.find(user, upload_id)  # it may have become a video meanwhile
        return doc, self.offset(doc)

    @staticmethod
    async def _hold(lock: asyncio.Lock) -> None:
        async with lock:
            pass

    async def begin_patch(
        self,
        user: User,
        upload_id: str,
        offset: int,
        content_length: int | None,
        checksum: Checksum | None,
    ) -> Chunk:
        """Open the upload to append at `offset`; the caller feeds the body to the Chunk, then ends it."""
        doc = self.live(await self.find(user, upload_id))
        lock = self._locks.setdefault(doc["_id"], asyncio.Lock())
        try:
            await asyncio.wait_for(lock.acquire(), LOCK_WAIT_S)
        except TimeoutError as err:
            raise Conflict("Another PATCH is writing to this upload.") from err
        try:
            if doc.get("video_id"):
                raise Conflict("The upload is complete.")
            current = self.offset(doc)
            if offset != current:
                raise Conflict(f"Upload-Offset {offset} does not match the upload's offset {current}.")
            room = doc["length"] - current
            if content_length is not None and content_length > room:
                raise TooLarge(f"The body goes past Upload-Length: {room} more bytes are expected.")
            path = self.part_path(doc["_id"])
            fd = await asyncio.get_running_loop().run_in_executor(None, open, path, "ab")
        except BaseException:
            lock.release()
            raise
        return Chunk(self, user, doc, lock, fd, current, room, checksum)

    async def complete(self, user: User, doc: dict[str, Any]) -> dict[str, Any]:
        """Move the whole file to a new video's source path and register it as the multipart upload does;
        a file that is not a video (or a category gone since) removes the upload and answers 400."""
        video_id = ObjectId()
        source = self.media.upload_path(video_id)
        part = self.part_path(doc["_id"])
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: source.parent.mkdir(parents=True, exist_ok=True))
        await loop.run_in_executor(None, os.replace, part, source)
        fields = doc["fields"]
        try:
            video = await self.catalogue.add_upload(
                user,
                video_id,
                source,
                fields["title"],
                fields.get("description") or "",
                fields.get("category") or None,
            )
        except BaseException:
            await self.media.remove_video(video_id)
            await self.uploads.delete(doc["_id"])
            raise
        await self.uploads.completed(doc["_id"], video_id)
        log.info("upload %s became video %s", doc["_id"], video_id)
        return video

    async def terminate(self, user: User, upload_id: str) -> None:
        """DELETE: forget the upload and its bytes (a video it became stays)."""
        doc = await self.find(user, upload_id)
        if self.files.busy(doc["_id"]):
            raise Conflict("A PATCH is writing to this upload.")
        await self.files.remove(doc)


@dataclass
class Chunk:
    """One PATCH body being appended: counts, hashes and writes it; `finish` or `abandon` ends it."""

    service: UploadService
    user: User
    doc: dict[str, Any]
    lock: asyncio.Lock
    fd: BinaryIO | None
    start: int
    room: int
    checksum: Checksum | None
    received: int = 0
    hasher: Any = field(default=None)

    def __post_init__(self) -> None:
        if self.checksum is not None:
            self.hasher = CHECKSUM_ALGORITHMS[self.checksum.algorithm]()

    async def write(self, data: bytes) -> None:
        """Append bytes (through a thread); TooLarge past Upload-Length, InsufficientStorage on a full disk.
        After an error the chunk is already ended."""
        if self.fd is None:
            return
        if self.received + len(data) > self.room:
            await self.fail()
            raise TooLarge(f"The body goes past Upload-Length: {self.room} more bytes were expected.")
        self.received += len(data)
        if self.hasher is not None:
            self.hasher.update(data)
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._write, self.fd, data)
        except OSError as err:
            self.abandon()  # what reached the disk stays
            if err.errno == errno.ENOSPC:
                raise InsufficientStorage("The server ran out of disk space for this upload.") from err
            raise

    @staticmethod
    def _write(fd: BinaryIO, data: bytes) -> None:
        fd.write(data)
        fd.flush()  # the offset a HEAD reports is what is on disk

    async def finish(self) -> tuple[int, datetime, dict[str, Any] | None]:
        """The body arrived whole: (new offset, new expiry, the video when the upload is complete)."""
        try:
            self._close()
            if self.checksum is not None and self.hasher.digest() != self.checksum.digest:
                await self._truncate()
                raise ChecksumMismatch()
            offset = self.start + self.received
            expires_at = self.service.expires_from(self.service.clock())
            await self.service.uploads.touch(self.doc["_id"], expires_at)
            video = None
            if offset == self.doc["length"]:
                video = await self.service.complete(self.user, self.doc)
            return offset, expires_at, video
        finally:
            self._release()

    async def fail(self) -> None:
        """Refuse the whole body: nothing of it stays."""
        self._close()
        await self._truncate()
        self._release()

    def abandon(self) -> None:
        """The connection dropped: the bytes on disk stay, unless a checksum can no longer vouch for them."""
        self._close()
        if self.checksum is not None:
            os.truncate(self.service.part_path(self.doc["_id"]), self.start)
        elif self.received and self.start + self.received == self.doc["length"]:
            # Every byte arrived, only the end of the request did not: a client that asks HEAD next
            # sees the whole length and stops, so the video is made now.
            task = asyncio.get_running_loop().create_task(self._complete_anyway())
            self.service.background.add(task)
            task.add_done_callback(self.service.background.discard)
            return
        self._release()

    async def _complete_anyway(self) -> None:
        try:
            await self.service.complete(self.user, self.doc)
        except DomainError as err:
            log.warning("upload %s could not become a video: %s", self.doc["_id"], err)
        finally:
            self._release()

    async def _truncate(self) -> None:
        path = self.service.part_path(self.doc["_id"])
        await asyncio.get_running_loop().run_in_executor(None, os.truncate, path, self.start)

    def _close(self) -> None:
        if self.fd is not None:
            self.fd.close()
            self.fd = None

    def _release(self) -> None:
        if self.lock.locked():
            self.lock.release()


class UploadExpiry:
    """The periodic sweep: removes expired uploads every `every_s` seconds while the process serves."""

    def __init__(self, files: UploadFiles, every_s: float = SWEEP_EVERY_S) -> None:
        self.files = files
        self.every_s = every_s
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def sweep(self) -> tuple[int, int]:
        """One pass: (count, bytes) removed."""
        return await self.files.expire_stale()

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # the database may be away for a while: try again next time
                log.exception("the sweep of expired uploads failed")
            await asyncio.sleep(self.every_s)
