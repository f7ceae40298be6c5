"""Uploads, both kinds: the multipart POST (one request) and resumable tus uploads (many PATCHes, to any
API process). One place mints a new video's id and applies the size and free-space rules to both.

A tus upload's offset and its PATCH lock (a short lease) live in its MongoDB record, and its bytes
where every process reads them (services/media/uploads.py), so any process continues any upload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bson import ObjectId

from core.clock import Clock
from core.config import MediaSettings
from core.errors import (
    Conflict,
    Forbidden,
    Gone,
    InsufficientStorage,
    InvalidField,
    Locked,
    NotFound,
    TooLarge,
)
from models.uploads import Uploads, new_upload
from models.users import User
from models.videos import Video
from services.catalogue import CatalogueService, VideoView
from services.media import Media, remove_tree
from services.media.uploads import UploadBytes
from services.upload_chunks import LEASE_S, LOCK_WAIT_S, POLL_S, Checksum, Chunk, Lease, held

log = logging.getLogger("videoflix.uploads")

MIB = 1024 * 1024
# Room for the multipart framing and the text fields around a multipart upload's file.
FORM_OVERHEAD = MIB
# A HEAD waits at most this long for a PATCH that is ending, so the offset it reports is settled.
SETTLE_WAIT_S = 2.0
# The periodic sweep looks for stale uploads at most this often.
SWEEP_EVERY_S = 60.0
NO_ROOM = "Not enough disk space on the server for this upload."


class UploadFiles:
    """The records and bytes of resumable uploads, and their removal when stale."""

    def __init__(self, uploads: Uploads, stored: UploadBytes, clock: Clock) -> None:
        self.uploads = uploads
        self.bytes = stored
        self.clock = clock

    async def remove(self, doc: dict[str, Any]) -> int:
        """Delete an upload's bytes and record; the bytes freed."""
        if doc.get("video_id"):
            await self.uploads.delete(doc["_id"])
            return 0
        await self.bytes.discard(doc)
        await self.uploads.delete(doc["_id"])
        return int(doc.get("offset", 0))

    async def expire_stale(self) -> tuple[int, int]:
        """Remove uploads past their expiry (not one a PATCH is writing to); (count, bytes freed)."""
        count = freed = 0
        for doc in await self.uploads.expired(self.clock()):
            lease = Lease(self.uploads, doc["_id"], self.clock, LEASE_S)
            taken = await lease.take(0)  # one sweeper, in one process, removes it; never under a PATCH
            if taken is None:
                continue
            try:
                freed += await self.remove(taken)
            finally:
                await lease.release()
            count += 1
        if count:
            log.info("removed %d expired uploads (%d bytes)", count, freed)
        return count, freed


@dataclass
class Ingest:
    """Where one multipart upload's file goes: the handler streams into `path`, at most `limit_bytes`."""

    video_id: ObjectId
    path: Path
    limit_bytes: int

    async def discard(self) -> None:
        """Remove whatever was written (the video's folder holds nothing else yet)."""
        await remove_tree(self.path.parent)


class UploadService:
    """Opens multipart uploads; creates, reports, appends to, finishes and terminates resumable ones."""

    def __init__(
        self,
        files: UploadFiles,
        media: Media,
        catalogue: CatalogueService,
        settings: MediaSettings,
        clock: Clock,
        free_bytes: Callable[[], int] | None = None,
        lease_s: float = LEASE_S,
    ) -> None:
        self.files = files
        self.uploads = files.uploads
        self.bytes = files.bytes
        self.media = media
        self.catalogue = catalogue
        self.settings = settings
        self.clock = clock
        self.lease_s = lease_s
        # Completions that run after their connection dropped (kept so they are not collected).
        self.background: set[asyncio.Task[None]] = set()
        # Free space on MEDIA_ROOT (injectable: tests give a figure instead of filling a disk).
        self.free_bytes = free_bytes or media.free_bytes
        # Creations check the reservations and insert one at a time, so two cannot share the same room.
        self._creating = asyncio.Lock()

    def offset(self, doc: dict[str, Any]) -> int:
        """Bytes received and committed (the whole length once it became a video)."""
        return int(doc["length"] if doc.get("video_id") else doc.get("offset", 0))

    def expires_from(self, now: datetime) -> datetime:
        return now + timedelta(hours=self.settings.upload_expiry_h)

    @property
    def max_bytes(self) -> int:
        return self.settings.max_upload_mb * MIB

    async def expire_stale(self) -> tuple[int, int]:
        """Remove expired uploads; (count, bytes freed)."""
        return await self.files.expire_stale()

    def new_video_id(self) -> ObjectId:
        """The one place a new video's id is minted (it names the folder and key its source goes to)."""
        return ObjectId()

    def check_size(self, length: int, overhead: int = 0) -> None:
        """TooLarge past media.max_upload_mb (plus `overhead`: a multipart body's framing)."""
        if length > self.max_bytes + overhead:
            raise TooLarge(f"The upload is larger than the limit of {self.settings.max_upload_mb} MB.")

    async def check_room(self, length: int, now: datetime) -> None:
        """InsufficientStorage unless the disk holds `length` more once every open tus upload receives
        the rest of its declared length (what they received is on the disk already)."""
        unfinished = await self.uploads.unfinished(now)
        reserved = sum(max(0, doc["length"] - self.offset(doc)) for doc in unfinished)
        if self.free_bytes() - reserved < length + self.settings.min_free_mb * MIB:
            raise InsufficientStorage(NO_ROOM)

    # --- multipart: one request ------------------------------------------------------------------

    async def open_ingest(self, declared: int) -> Ingest:
        """Check a multipart body's declared size and the room for it; where its file goes."""
        self.check_size(declared, FORM_OVERHEAD)
        await self.check_room(declared, self.clock())
        video_id = self.new_video_id()
        path = self.media.upload_path(video_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        return Ingest(video_id, path, self.max_bytes + FORM_OVERHEAD)

    async def add_ingest(self, user: User, ingest: Ingest, fields: Any) -> VideoView:
        """Register a multipart upload's file as a video (its fields: title, description, category);
        whatever is refused leaves no file behind."""
        try:
            if ingest.path.stat().st_size == 0:
                raise InvalidField("file", "The submitted file is empty.")
            return await self.catalogue.add_upload(
                user,
                ingest.video_id,
                ingest.path,
                fields.title,
                fields.description,
                fields.category or None,
            )
        except BaseException:
            await ingest.discard()
            raise

    # --- tus: the protocol's steps -------------------------------------------------------------

    async def create(
        self, user: User, length: int, fields: dict[str, Any], filename: str | None
    ) -> dict[str, Any]:
        """A new, empty upload of `length` bytes; `fields` are the video's title, description, category."""
        if length < 1:
            raise InvalidField("Upload-Length", "Ensure this value is greater than or equal to 1.")
        self.check_size(length)
        if fields.get("category"):
            await self.catalogue.category_by_id_or_slug(fields["category"], "category")
        async with self._creating:
            now = self.clock()
            await self.reserve(user, length, now)
            doc = new_upload(
                user.id, length, fields, filename, now, self.expires_from(now), self.new_video_id()
            )
            await self.bytes.create(doc)
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
        await self.check_room(length, now)

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
        """(upload, offset) for HEAD; waits briefly for a PATCH that is ending (in any process) so the
        offset is settled, then reports what is committed."""
        doc = self.live(await self.find(user, upload_id))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_WAIT_S
        while held(doc, self.clock()) and loop.time() < deadline:
            await asyncio.sleep(POLL_S)
            doc = await self.find(user, upload_id)  # it may have become a video meanwhile
        return doc, self.offset(doc)

    async def begin_patch(
        self,
        user: User,
        upload_id: str,
        offset: int,
        content_length: int | None,
        checksum: Checksum | None,
    ) -> Chunk:
        """Take the upload's lease and open it at `offset`; the caller feeds the body to the Chunk.
        Locked (423) while another PATCH holds it: tus-js-client retries a 423 (and a 409) after a
        HEAD, tuspy retries any refusal when asked to; 409 stays the answer for a wrong offset."""
        doc = self.live(await self.find(user, upload_id))
        lease = Lease(self.uploads, doc["_id"], self.clock, self.lease_s)
        taken = await lease.take(LOCK_WAIT_S)
        if taken is None:
            raise Locked("Another PATCH is writing to this upload.", headers={"Retry-After": "1"})
        try:
            doc = taken
            if doc.get("video_id"):
                raise Conflict("The upload is complete.")
            current = self.offset(doc)
            if offset != current:
                raise Conflict(f"Upload-Offset {offset} does not match the upload's offset {current}.")
            room = doc["length"] - current
            if content_length is not None and content_length > room:
                raise TooLarge(f"The body goes past Upload-Length: {room} more bytes are expected.")
            writer = await self.bytes.open(doc, hold=checksum is not None)
        except BaseException:
            await lease.release()
            raise
        return Chunk(self, user, doc, lease, writer, current, room, checksum)

    async def complete(self, user: User, doc: dict[str, Any]) -> Video:
        """Register the whole upload as a new video, as the multipart upload does; a file that is not a
        video (or a category gone since) removes the upload and answers 400."""
        video_id = doc["new_video_id"]
        fields = doc["fields"]
        try:
            source = await self.bytes.place(doc, video_id)
            shown = await self.catalogue.add_upload(
                user,
                video_id,
                source,
                fields["title"],
                fields.get("description") or "",
                fields.get("category") or None,
                stored=self.bytes.stored,
            )
        except BaseException:
            await self.catalogue.media.delete_video(video_id)
            await self.uploads.delete(doc["_id"])
            raise
        finally:
            if self.bytes.stored:  # the local copy was only for probing
                await remove_tree(self.media.video_dir(video_id))
        await self.uploads.completed(doc["_id"], video_id)
        log.info("upload %s became video %s", doc["_id"], video_id)
        return shown.video

    async def terminate(self, user: User, upload_id: str) -> None:
        """DELETE: forget the upload and its bytes (a video it became stays)."""
        doc = await self.find(user, upload_id)
        lease = Lease(self.uploads, doc["_id"], self.clock, self.lease_s)
        taken = await lease.take(0)
        if taken is None:
            raise Conflict("A PATCH is writing to this upload.")
        try:
            await self.files.remove(taken)
        finally:
            await lease.release()


class UploadExpiry:
    """The periodic sweep: removes expired uploads every `every_s` seconds while the process serves."""

    def __init__(self, files: UploadFiles, every_s: float = SWEEP_EVERY_S) -> None:
        self.files = files
        self.every_s = every_s
        self._task: asyncio.Task[None] | None = None

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
