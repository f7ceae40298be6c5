"""One tus PATCH at work: its lease on the upload (in MongoDB, so it holds across processes) and its body
on the way to where every process can read it."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import errno
import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from core.clock import Clock
from core.errors import (
    ChecksumMismatch,
    Conflict,
    DomainError,
    InsufficientStorage,
    InvalidInput,
    Locked,
    TooLarge,
)
from models.uploads import Uploads
from models.users import User
from models.videos import Video
from services.media.uploads import Writer

if TYPE_CHECKING:
    from services.uploads import UploadService

log = logging.getLogger("videoflix.uploads")

CHECKSUM_ALGORITHMS = {"sha1": hashlib.sha1}
# How long a lease lasts unless renewed: a process that dies mid-PATCH blocks its upload this long.
LEASE_S = 15.0
# How often a held lease is polled for, and how long a PATCH waits for one (the previous PATCH of the
# same client may still be committing what its dropped connection delivered).
POLL_S = 0.05
LOCK_WAIT_S = 5.0
LOST_LEASE = "This PATCH lost the upload's lock to another; ask HEAD for the offset and resume."


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


def held(doc: dict[str, Any], now: datetime) -> bool:
    """True while some request holds the upload's lease."""
    until = doc.get("lease_until")
    return bool(doc.get("lease_owner")) and until is not None and until > now


class Lease:
    """The right to write to one upload, held in its MongoDB record and renewed in the background."""

    def __init__(self, uploads: Uploads, upload_id: Any, clock: Clock, lease_s: float) -> None:
        self.uploads = uploads
        self.upload_id = upload_id
        self.clock = clock
        self.lease_s = lease_s
        self.owner = secrets.token_hex(8)  # one per request: two PATCHes in one process are two owners
        self.lost = False
        self._renewing: asyncio.Task[None] | None = None

    def until(self) -> datetime:
        return self.clock() + timedelta(seconds=self.lease_s)

    async def take(self, wait_s: float) -> dict[str, Any] | None:
        """The upload once its lease is this one's; None when another holds it past `wait_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            doc = await self.uploads.acquire(self.upload_id, self.owner, self.clock(), self.until())
            if doc is not None:
                self._renewing = loop.create_task(self._renew())
                return doc
            if loop.time() >= deadline:
                return None
            await asyncio.sleep(POLL_S)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                if not await self.uploads.renew(self.upload_id, self.owner, self.until()):
                    self.lost = True
                    return
            except Exception:  # the database may be away a moment: the next round tries again
                log.warning("could not renew the lease on upload %s", self.upload_id, exc_info=True)

    async def release(self) -> None:
        """Stop renewing and give the lease up."""
        task, self._renewing = self._renewing, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):  # unreleased, it runs out by itself
            await self.uploads.release(self.upload_id, self.owner)


@dataclass
class Chunk:
    """One PATCH body being appended: counts, hashes and stores it; `finish`, `fail` or `abandon` ends it."""

    service: UploadService
    user: User
    doc: dict[str, Any]
    lease: Lease
    writer: Writer | None
    start: int
    room: int
    checksum: Checksum | None
    received: int = 0
    hasher: Any = field(default=None)
    committed: int = 0
    # One store operation at a time: a drop that ends the request waits for a write under way.
    io: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.committed = self.start
        if self.checksum is not None:
            self.hasher = CHECKSUM_ALGORITHMS[self.checksum.algorithm]()

    async def write(self, data: bytes) -> None:
        """Append bytes; TooLarge past Upload-Length, InsufficientStorage on a full disk, Locked when the
        lease was lost. After an error the chunk is already ended."""
        async with self.io:
            if self.writer is None:
                return
            if self.lease.lost:
                await self._end(drop=True)
                raise Locked(LOST_LEASE, headers={"Retry-After": "1"})
            if self.received + len(data) > self.room:
                await self._end(drop=True)
                raise TooLarge(f"The body goes past Upload-Length: {self.room} more bytes were expected.")
            self.received += len(data)
            if self.hasher is not None:
                self.hasher.update(data)
            try:
                changes = await self.writer.write(data)
                if changes is not None:
                    await self._commit(changes)
            except OSError as err:
                await self._keep()  # what reached the disk stays
                if err.errno == errno.ENOSPC:
                    raise InsufficientStorage("The server ran out of disk space for this upload.") from err
                raise
            except Conflict:  # the lease was lost: another writer owns the upload now
                await self._close()
                raise
            except DomainError:
                await self._keep()
                raise

    async def _commit(self, changes: dict[str, Any]) -> None:
        if not await self.service.uploads.commit(self.doc["_id"], self.lease.owner, self.committed, changes):
            raise Conflict(LOST_LEASE)
        self.committed = changes["offset"]

    async def finish(self) -> tuple[int, datetime, Video | None]:
        """The body arrived whole: (new offset, new expiry, the video when the upload is complete)."""
        async with self.io:
            assert self.writer is not None
            try:
                if self.checksum is not None and self.hasher.digest() != self.checksum.digest:
                    await self.writer.drop()
                    raise ChecksumMismatch()
                offset, expires_at = await self._save()
                video = None
                if offset == self.doc["length"]:
                    video = await self.service.complete(self.user, self.doc)
                return offset, expires_at, video
            finally:
                await self._close()

    async def _save(self) -> tuple[int, datetime]:
        """Make what arrived shared and commit it with a later expiry."""
        assert self.writer is not None
        offset = self.start + self.received
        changes = await self.writer.save(final=offset == self.doc["length"])
        expires_at = self.service.expires_from(self.service.clock())
        await self._commit({**changes, "expires_at": expires_at})
        return offset, expires_at

    async def _end(self, drop: bool) -> None:
        if self.writer is not None and drop:
            with contextlib.suppress(Exception):
                await self.writer.drop()
        await self._close()

    async def _keep(self) -> None:
        """The body stops early: keep what arrived (unless a checksum can no longer vouch for it)."""
        if self.writer is None:
            return
        try:
            if self.checksum is not None:
                await self.writer.drop()
            elif self.received:
                offset, _ = await self._save()
                if offset == self.doc["length"]:
                    # Every byte arrived, only the end of the request did not: a client that asks HEAD
                    # next sees the whole length and stops, so the video is made now.
                    await self.service.complete(self.user, self.doc)
        except DomainError as err:
            log.warning("upload %s: what arrived could not be kept: %s", self.doc["_id"], err)
        except Exception:
            log.exception("upload %s: what arrived could not be kept", self.doc["_id"])
        finally:
            await self._close()

    async def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        await self.lease.release()

    def abandon(self) -> None:
        """The connection dropped: keep what arrived, in the background (the request is over)."""
        task = asyncio.get_running_loop().create_task(self._abandon())
        self.service.background.add(task)
        task.add_done_callback(self.service.background.discard)

    async def _abandon(self) -> None:
        async with self.io:
            await self._keep()
