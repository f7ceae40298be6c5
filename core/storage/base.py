"""What every media store offers, and the rules of keys: '/'-separated paths relative to the store's
root, the same on every backend, e.g. ``videos/<id>/source`` and ``videos/<id>/hls-<run>/720p/seg_00001.ts``.

Publishing a ladder atomically is the caller's part, with what a store gives: upload the finished
folder under a FRESH prefix (``upload_folder`` returns only when every object is there), point the video
at that prefix in MongoDB, then ``delete_prefix`` the old one. Nothing half-uploaded is ever named by a
video. A runner killed mid-upload leaves objects under a prefix no video names: the next attempt (or a
sweep) deletes it with ``delete_prefix``.

Every failure of the store surfaces as ``StorageUnavailable`` (503 through the domain error mapping):
one sentence naming the operation, never the store (bucket, endpoint) nor a credential; the log line
names the store and its full reason. An object that is not there is ``ObjectMissing`` (404).
"""

from __future__ import annotations

import abc
import asyncio
import mimetypes
import os
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Collection
from pathlib import Path, PurePosixPath
from typing import Any

from core.errors import NotFound, Unavailable

MiB = 1024 * 1024
# S3 refuses parts below 5 MiB (except the last): the buffer an upload holds at most is one part.
DEFAULT_PART_SIZE = 8 * MiB
# The one table of media types: the store labels its objects with it, this server its answers.
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".mpd": "application/dash+xml",
    ".jpg": "image/jpeg",
    ".vtt": "text/vtt; charset=utf-8",
}
# How long a copy may be kept: segments never change (a new ladder gets a new prefix); playlists and
# pictures may be re-made.
# An init segment (.mp4) is as fixed as the segments it starts.
MAX_AGE_S = {
    ".ts": 31536000,
    ".m4s": 31536000,
    ".mp4": 31536000,
    ".m3u8": 60,
    ".mpd": 60,
    ".jpg": 3600,
    ".vtt": 3600,
}
IMMUTABLE = frozenset({".ts", ".m4s", ".mp4"})


def cache_control(name: str, *, shared: bool = True) -> str | None:
    """Cache-Control of a media file: `public` for the store and edges (one copy serves every viewer),
    `private` for what this server sends under one user's grant; None for a kind not in the table."""
    suffix = PurePosixPath(name).suffix
    if suffix not in MAX_AGE_S:
        return None
    scope = "public" if shared else "private"
    return f"{scope}, max-age={MAX_AGE_S[suffix]}" + (", immutable" if suffix in IMMUTABLE else "")


class StorageUnavailable(Unavailable):
    """The media store failed or cannot be reached; `detail` is one sentence without secrets."""

    default_detail = "The media store is unavailable; please try again later."


class ObjectMissing(NotFound):
    """The object asked for is not in the store (404): a missing file, not a store failure."""

    default_detail = "Not found."


def check_key(key: str) -> str:
    """A key is a relative '/'-path without '..', '.', empty parts or NUL: nothing escapes the root."""
    parts = key.split("/")
    if not key or key.startswith("/") or "\x00" in key or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a media key: {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """A prefix names a folder: a key, given with or without its trailing '/'."""
    return check_key(prefix.rstrip("/")) + "/"


def fresh_prefix(folder: str, stem: str = "hls") -> str:
    """A prefix no object has yet, e.g. ``videos/<id>/hls-3f9a1c2b``: a new ladder is uploaded there."""
    return f"{check_key(folder.rstrip('/'))}/{stem}-{secrets.token_hex(4)}/"


def content_type(name: str) -> str:
    """The media type of a file by its name (the table above, then the platform's guess)."""
    suffix = PurePosixPath(name).suffix
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def files_below(folder: Path) -> list[tuple[Path, str]]:
    """Every regular file below `folder`, with its '/'-path relative to it (links are not followed)."""
    found = []
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                found.append((path, path.relative_to(folder).as_posix()))
    return sorted(found, key=lambda item: item[1])


class StorageBackend(abc.ABC):
    """What the media module (services/media) asks of a store: one subclass per backend module."""

    kind = "abstract"

    async def start(self) -> None:  # noqa: B027 (an optional hook)
        """Open connections (and check the store answers)."""

    async def close(self) -> None:  # noqa: B027 (an optional hook)
        """Release connections."""

    @abc.abstractmethod
    async def put_stream(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Store the chunks as one object with bounded memory; return its size. On any failure (the
        store's or the chunk source's, or cancellation) nothing is left under `key` and the store's
        error becomes StorageUnavailable (the source's own exception propagates unchanged)."""

    @abc.abstractmethod
    async def download(self, key: str, dest: Path) -> Path:
        """Copy one object to a local file (a transcode runner's scratch folder); return the path."""

    @abc.abstractmethod
    async def upload_folder(self, folder: Path, prefix: str, skip: Collection[str] = ()) -> list[str]:
        """Store every file below `folder` under `prefix` (but those whose relative paths are in `skip`,
        already stored); return the keys once ALL are there."""

    @abc.abstractmethod
    async def put_file(self, path: Path, key: str) -> None:
        """Store one local file as `key` (retried as a ladder upload is)."""

    @abc.abstractmethod
    async def put_bytes(self, key: str, data: bytes) -> None:
        """Store a small object (a playlist) whole, replacing what was there at once."""

    @abc.abstractmethod
    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix` (and abort its unfinished uploads); return how many."""

    @abc.abstractmethod
    async def exists(self, key: str) -> bool:
        """True when the object exists."""

    @abc.abstractmethod
    async def read_bytes(self, key: str) -> bytes:
        """A small object (a playlist) whole."""

    @abc.abstractmethod
    async def list_keys(self, prefix: str) -> list[str]:
        """Every key under the prefix."""

    def local_path(self, key: str) -> Path | None:
        """The file on this machine holding `key`, when the store is a local folder (else None)."""
        return None

    # --- an object built from parts over many requests (a resumable upload), where the store has them

    # Every part but the last is exactly this long (S3 refuses parts below 5 MiB).
    part_size = DEFAULT_PART_SIZE

    @abc.abstractmethod
    async def begin_parts(self, key: str) -> str:
        """Start an object made of parts; return the store's id for it."""

    @abc.abstractmethod
    async def put_part(self, key: str, upload_id: str, number: int, data: bytes) -> dict[str, Any]:
        """Store part `number` (from 1; storing a number again replaces it); return what completes it."""

    @abc.abstractmethod
    async def complete_parts(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        """Join the parts, in order, into the object `key`."""

    @abc.abstractmethod
    async def abort_parts(self, key: str, upload_id: str) -> None:
        """Forget the parts (best effort: a store that is down clears them by its own lifecycle rule)."""


async def file_chunks(path: Path, size: int) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    with open(path, "rb") as file:
        while chunk := await loop.run_in_executor(None, file.read, size):
            yield chunk
