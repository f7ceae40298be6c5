"""Where media bytes live: MEDIA_ROOT on disk (the single box) or any S3-compatible object store.

Keys are '/'-separated paths relative to the store's root, the same on both backends, e.g.
``videos/<id>/source`` and ``videos/<id>/hls-<run>/720p/seg_00001.ts``.

Publishing a ladder atomically is the caller's part, with what this module gives: upload the finished
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
import contextlib
import logging
import mimetypes
import os
import random
import secrets
import shutil
from collections.abc import AsyncIterable, AsyncIterator, Collection
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.auth import SIGV4_TIMESTAMP, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
)

from core.errors import NotFound, Unavailable

log = logging.getLogger("videoflix.storage")

MiB = 1024 * 1024
# S3 refuses parts below 5 MiB (except the last): the buffer an upload holds at most is one part.
DEFAULT_PART_SIZE = 8 * MiB
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".jpg": "image/jpeg",
    ".vtt": "text/vtt; charset=utf-8",
}
# Segments never change (a new ladder gets a new prefix); playlists and pictures may be re-made.
CACHE_CONTROL = {
    ".ts": "public, max-age=31536000, immutable",
    ".m4s": "public, max-age=31536000, immutable",
    ".m3u8": "public, max-age=60",
}


STORE_ERRORS: tuple[type[BaseException], ...] = (BotoCoreError, ClientError, OSError, asyncio.TimeoutError)


class StorageUnavailable(Unavailable):
    """The media store failed or cannot be reached; `detail` is one sentence without secrets."""

    default_detail = "The media store is unavailable; please try again later."


class ObjectMissing(NotFound):
    """The object asked for is not in the store (404): a missing file, not a store failure."""

    default_detail = "Not found."


# What S3-compatible stores answer for a key that is not there.
MISSING_CODES = ("404", "NoSuchKey", "NotFound")


def is_missing(err: BaseException) -> bool:
    """True when a store error says the object does not exist."""
    return isinstance(err, ClientError) and err.response.get("Error", {}).get("Code") in MISSING_CODES


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


class MediaStorage(abc.ABC):
    """What the upload, transcode, delete and stream paths ask of a store."""

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


# --- local: MEDIA_ROOT on disk, as the single box has always run ------------------------------------


LOCAL_CHUNK = 1024 * 1024  # bytes read at a time when a local file is copied into the store


class LocalStorage(MediaStorage):
    """Objects are files below `root`; writes go to a hidden temporary name and are renamed in place."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def local_path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def _run(self, func: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, func, *args)

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        path = self.local_path(key)
        tmp = path.with_name(f".{path.name}.part-{secrets.token_hex(4)}")
        size = 0
        try:
            await self._write(key, lambda: path.parent.mkdir(parents=True, exist_ok=True))
            with open(tmp, "wb") as file:
                async for chunk in chunks:
                    await self._write(key, file.write, chunk)
                    size += len(chunk)
            await self._write(key, os.replace, tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return size

    async def _write(self, key: str, func: Any, *args: Any) -> Any:
        try:
            return await self._run(func, *args)
        except OSError as err:
            reason = err.strerror or type(err).__name__
            raise StorageUnavailable(f"Could not write {key} to the media folder: {reason}.") from None

    async def download(self, key: str, dest: Path) -> Path:
        source = self.local_path(key)
        if source.resolve() == dest.resolve():
            return dest
        try:
            await self._run(
                lambda: (dest.parent.mkdir(parents=True, exist_ok=True), shutil.copyfile(source, dest))
            )
        except OSError as err:
            raise StorageUnavailable(f"Could not read {key} from the media folder: {err.strerror}.") from err
        return dest

    async def upload_folder(self, folder: Path, prefix: str, skip: Collection[str] = ()) -> list[str]:
        target = self.local_path(check_prefix(prefix).rstrip("/"))
        keys = [check_prefix(prefix) + rel for _, rel in files_below(folder)]
        if folder.resolve() == target.resolve():
            return keys  # already in place (the transcoder wrote below MEDIA_ROOT)
        tmp = target.with_name(f".{target.name}.part-{secrets.token_hex(4)}")

        def copy() -> None:
            try:
                shutil.copytree(folder, tmp, symlinks=False)
                os.replace(tmp, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

        try:
            await self._run(copy)
        except OSError as err:
            raise StorageUnavailable(
                f"Could not write {prefix} to the media folder: {err.strerror}."
            ) from err
        return keys

    async def put_file(self, path: Path, key: str) -> None:
        if self.local_path(key).resolve() != path.resolve():
            await self.put_stream(key, file_chunks(path, LOCAL_CHUNK))

    async def put_bytes(self, key: str, data: bytes) -> None:
        async def whole() -> AsyncIterator[bytes]:
            yield data

        await self.put_stream(key, whole())

    async def delete_prefix(self, prefix: str) -> int:
        target = self.local_path(check_prefix(prefix).rstrip("/"))
        count = len(files_below(target)) if target.is_dir() else 0
        await self._run(lambda: shutil.rmtree(target, ignore_errors=True))
        return count

    async def exists(self, key: str) -> bool:
        return self.local_path(key).is_file()

    async def read_bytes(self, key: str) -> bytes:
        try:
            return await self._run(self.local_path(key).read_bytes)
        except FileNotFoundError as err:
            raise ObjectMissing() from err
        except OSError as err:
            raise StorageUnavailable(f"Could not read {key} from the media folder: {err.strerror}.") from err

    async def list_keys(self, prefix: str) -> list[str]:
        base = check_prefix(prefix)
        target = self.local_path(base.rstrip("/"))
        return [base + rel for _, rel in files_below(target)] if target.is_dir() else []


# --- S3: any S3-compatible store through aiobotocore -------------------------------------------------


def redact(url: str | None) -> str:
    """An endpoint as it may be shown: without user:password@, if someone put one there."""
    if not url:
        return "the S3 store"
    parts = urlsplit(url)
    return urlunsplit(
        (parts.scheme, parts.hostname + (f":{parts.port}" if parts.port else ""), parts.path, "", "")
    )


class S3Storage(MediaStorage):
    """One bucket of an S3-compatible store (AWS S3, MinIO, R2, Ceph RGW, GCS interop)."""

    kind = "s3"

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        public_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        concurrency: int = 8,
        attempts: int = 4,
        retry_base_s: float = 0.5,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 60.0,
    ) -> None:
        if part_size < 5 * MiB:
            raise ValueError("S3 parts are at least 5 MiB")
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.public_url = public_url or endpoint_url
        self.region = region
        self.part_size = part_size
        self.concurrency = concurrency
        self.attempts = attempts
        self.retry_base_s = retry_base_s
        self._credentials = (access_key_id, secret_access_key)
        self._timeouts = (connect_timeout_s, read_timeout_s)
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self.where = f"bucket '{bucket}' at {redact(endpoint_url)}"

    @classmethod
    def from_settings(cls, s3: Any) -> S3Storage:
        """From the `s3` settings section (core.config.S3Settings)."""
        return cls(
            s3.bucket,
            endpoint_url=s3.endpoint_url,
            public_url=s3.public_url,
            region=s3.region,
            access_key_id=s3.access_key_id,
            secret_access_key=s3.secret_access_key,
            part_size=s3.part_size_mb * MiB,
            concurrency=s3.concurrency,
            attempts=s3.max_attempts,
            retry_base_s=s3.retry_base_s,
            connect_timeout_s=s3.connect_timeout_s,
            read_timeout_s=s3.read_timeout_s,
        )

    async def start(self) -> None:
        access, secret = self._credentials
        config = AioConfig(
            region_name=self.region,
            signature_version="s3v4",
            connect_timeout=self._timeouts[0],
            read_timeout=self._timeouts[1],
            retries={"max_attempts": 2, "mode": "standard"},
            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
            max_pool_connections=max(10, self.concurrency * 2),
        )
        self._client = await self._stack.enter_async_context(
            get_session().create_client(
                "s3",
                endpoint_url=self.endpoint_url,
                aws_access_key_id=access or None,
                aws_secret_access_key=secret or None,
                config=config,
            )
        )

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError("S3Storage.start() was not awaited")
        return self._client

    def failure(self, action: str, err: BaseException) -> StorageUnavailable:
        """One sentence for any store error: what failed and why, for the answer (which never names the
        store: its bucket and address are no client's business); the log line names the store and
        carries the store's own message (an AccessDenied message names the bucket)."""
        if isinstance(err, ClientError):
            error = err.response.get("Error", {})
            reason = str(error.get("Code", "error"))
            message = f"{reason}: {error.get('Message') or 'no message'}"
        elif isinstance(err, (ReadTimeoutError, asyncio.TimeoutError)):
            reason = message = "it did not answer in time"
        elif isinstance(err, (EndpointConnectionError, HTTPClientError, ConnectionClosedError, OSError)):
            reason = message = "cannot connect to it"
        else:
            reason = message = type(err).__name__
        log.warning("the media store (%s) failed to %s (%s)", self.where, action, message)
        return StorageUnavailable(f"The media store failed to {action} ({reason}).")

    @staticmethod
    def store_errors() -> tuple[type[BaseException], ...]:
        return STORE_ERRORS

    async def check(self) -> None:
        """Raise StorageUnavailable unless the bucket answers (start-up and readiness probes)."""
        try:
            await self.client.head_bucket(Bucket=self.bucket)
        except self.store_errors() as err:
            raise self.failure("answer for the bucket", err) from err

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """One part in memory at most; a single PUT when the whole stream fits in one part."""
        check_key(key)
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        size = 0
        try:
            async for chunk in chunks:
                buffer += chunk
                size += len(chunk)
                while len(buffer) >= self.part_size:
                    if upload_id is None:
                        upload_id = await self._begin(key)
                    await self._part(key, upload_id, parts, bytes(buffer[: self.part_size]))
                    del buffer[: self.part_size]
            if upload_id is None:
                await self._call(
                    "store " + key,
                    self.client.put_object,
                    Bucket=self.bucket,
                    Key=key,
                    Body=bytes(buffer),
                    ContentType=content_type(key),
                )
                return size
            if buffer or not parts:
                await self._part(key, upload_id, parts, bytes(buffer))
            await self._call(
                "complete the upload of " + key,
                self.client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
            upload_id = None
            return size
        finally:
            if upload_id is not None:
                await asyncio.shield(self._abort(key, upload_id))

    async def _call(self, action: str, method: Any, **kwargs: Any) -> Any:
        try:
            return await method(**kwargs)
        except self.store_errors() as err:
            raise self.failure(action, err) from err

    async def _begin(self, key: str) -> str:
        answer = await self._call(
            "start the upload of " + key,
            self.client.create_multipart_upload,
            Bucket=self.bucket,
            Key=key,
            ContentType=content_type(key),
        )
        return answer["UploadId"]

    async def _part(self, key: str, upload_id: str, parts: list[dict[str, Any]], body: bytes) -> None:
        number = len(parts) + 1
        answer = await self._call(
            "store part of " + key,
            self.client.upload_part,
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    async def _abort(self, key: str, upload_id: str) -> None:
        """Best effort: a store that is down cannot be told; its lifecycle rule clears it later
        (AbortIncompleteMultipartUpload, docs/scale.md), or `abort_uploads` does once it is back."""
        try:
            await self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except self.store_errors() as err:
            self.failure(f"abort the upload of {key}", err)  # logged; nobody waits for it

    async def abort_uploads(self, prefix: str) -> int:
        """Abort every unfinished multipart upload under `prefix`; return how many."""
        count = 0
        try:
            paginator = self.client.get_paginator("list_multipart_uploads")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=check_prefix(prefix)):
                for upload in page.get("Uploads", []):
                    await self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    count += 1
        except self.store_errors() as err:
            raise self.failure(f"abort the unfinished uploads under {prefix}", err) from err
        return count

    async def read_bytes(self, key: str) -> bytes:
        """A small object (a playlist) whole; ObjectMissing when it is not there."""
        try:
            answer = await self.client.get_object(Bucket=self.bucket, Key=check_key(key))
        except self.store_errors() as err:
            if is_missing(err):
                raise ObjectMissing() from err
            raise self.failure("read " + key, err) from err
        try:
            async with answer["Body"] as body:
                return await body.read()
        except self.store_errors() as err:
            raise self.failure("read " + key, err) from err

    async def download(self, key: str, dest: Path) -> Path:
        check_key(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            answer = await self.client.get_object(Bucket=self.bucket, Key=key)
            async with answer["Body"] as body:
                with open(tmp, "wb") as file:
                    async for chunk in body.iter_chunks(1 * MiB):
                        file.write(chunk)
            os.replace(tmp, dest)
        except self.store_errors() as err:
            raise self.failure("send " + key, err) from err
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    async def upload_folder(self, folder: Path, prefix: str, skip: Collection[str] = ()) -> list[str]:
        """`concurrency` files at once, each tried `attempts` times with doubling, jittered delays."""
        base = check_prefix(prefix)
        files = [(path, rel) for path, rel in files_below(folder) if rel not in skip]
        gate = asyncio.Semaphore(self.concurrency)

        async def one(path: Path, rel: str) -> str:
            key = base + rel
            async with gate:
                await self.put_file(path, key)
            return key

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(path, rel)) for path, rel in files]
        except BaseExceptionGroup as group_error:
            with contextlib.suppress(StorageUnavailable):
                await self.delete_prefix(base)  # best effort: the prefix is fresh, no video names it
            first = group_error.exceptions[0]
            raise first from first.__cause__
        return [task.result() for task in tasks]

    async def put_file(self, path: Path, key: str) -> None:
        await self._with_retries(f"store {key}", self._put_file, path, check_key(key))

    async def put_bytes(self, key: str, data: bytes) -> None:
        await self._with_retries(f"store {key}", self._put_bytes, check_key(key), data)

    async def _put_bytes(self, key: str, data: bytes) -> None:
        suffix = PurePosixPath(key).suffix
        extra = {"CacheControl": CACHE_CONTROL[suffix]} if suffix in CACHE_CONTROL else {}
        await self.client.put_object(
            Bucket=self.bucket, Key=key, Body=data, ContentType=content_type(key), **extra
        )

    async def _put_file(self, path: Path, key: str) -> None:
        if path.stat().st_size > self.part_size:
            await self.put_stream(key, file_chunks(path, self.part_size))
            return
        body = await asyncio.get_running_loop().run_in_executor(None, path.read_bytes)
        await self._put_bytes(key, body)

    async def _with_retries(self, action: str, func: Any, *args: Any) -> None:
        for attempt in range(1, self.attempts + 1):
            try:
                await func(*args)
                return
            except (*self.store_errors(), StorageUnavailable) as err:
                if attempt == self.attempts:
                    if isinstance(err, StorageUnavailable):
                        raise
                    raise self.failure(action, err) from err
                delay = self.retry_base_s * 2 ** (attempt - 1) * (1 + random.uniform(-0.2, 0.2))
                log.info(
                    "%s failed (attempt %d of %d); again in %.1f s", action, attempt, self.attempts, delay
                )
                await asyncio.sleep(delay)

    async def list_keys(self, prefix: str) -> list[str]:
        keys = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=check_prefix(prefix)):
                keys += [item["Key"] for item in page.get("Contents", [])]
        except self.store_errors() as err:
            raise self.failure(f"list {prefix}", err) from err
        return keys

    async def delete_prefix(self, prefix: str) -> int:
        await self.abort_uploads(prefix)
        keys = await self.list_keys(prefix)
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1000 keys at most
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            answer = await self._call(
                f"delete {prefix}",
                self.client.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": batch, "Quiet": True},
            )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                log.warning(
                    "the media store (%s) refused to delete %s (%s: %s)",
                    self.where,
                    first.get("Key"),
                    first.get("Code"),
                    first.get("Message"),
                )
                raise StorageUnavailable(
                    f"The media store refused to delete {first.get('Key')} ({first.get('Code')})."
                )
        return len(keys)

    async def exists(self, key: str) -> bool:
        try:
            await self.client.head_object(Bucket=self.bucket, Key=check_key(key))
        except self.store_errors() as err:
            if is_missing(err):
                return False
            raise self.failure("answer for " + key, err) from err
        return True

    # --- presigned GETs -------------------------------------------------------------------------

    def object_url(self, key: str) -> str:
        """The object's path-style URL as viewers reach it (unsigned)."""
        base = (self.public_url or f"https://s3.{self.region}.amazonaws.com").rstrip("/")
        return f"{base}/{quote(self.bucket)}/{quote(check_key(key), safe='/~')}"

    def presign(self, key: str, expires_s: int, signed_at: datetime | None = None) -> str:
        """A presigned GET URL valid `expires_s` seconds from `signed_at` (default now).

        Pinning `signed_at` to the start of a window (core/edge.py) makes every URL of that window the
        same string, so a shared cache or CDN keeps one copy per object for all viewers.
        """
        access, secret = self._credentials
        if not (access and secret):
            raise StorageUnavailable(
                "Presigned media URLs need S3 access keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)."
            )
        when = (signed_at or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None, microsecond=0)
        signer = PinnedS3QueryAuth(Credentials(access, secret), "s3", self.region, expires_s, when)
        request = AWSRequest(method="GET", url=self.object_url(key))
        signer.add_auth(request)
        return request.url


class PinnedS3QueryAuth(S3SigV4QueryAuth):
    """botocore's presigner with the signing time given instead of read from the clock."""

    def __init__(self, credentials: Any, service: str, region: str, expires: int, when: datetime) -> None:
        super().__init__(credentials, service, region, expires=expires)
        self._when = when

    def add_auth(self, request: Any) -> None:
        request.context["timestamp"] = self._when.strftime(SIGV4_TIMESTAMP)
        self._modify_request_before_signing(request)
        canonical = self.canonical_request(request)
        signature = self.signature(self.string_to_sign(request, canonical), request)
        self._inject_signature_to_request(request, signature)


class StreamingUpload:
    """An upload fed chunk by chunk as a request body arrives, streamed into the store meanwhile.

    ``write`` waits while `max_pending` chunks are queued (the store is slower than the client), so a
    Tornado ``data_received`` that awaits it stops reading the socket: memory stays bounded end to end.
    ``finish`` returns the object's size once it is stored; ``abort`` (client gone, body refused) leaves
    nothing behind. A store failure surfaces as StorageUnavailable from ``write`` or ``finish``.
    """

    def __init__(self, storage: MediaStorage, key: str, max_pending: int = 8) -> None:
        self.key = check_key(key)
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(max_pending)
        self._task = asyncio.ensure_future(storage.put_stream(key, self._chunks()))

    async def _chunks(self) -> AsyncIterator[bytes]:
        while (chunk := await self._queue.get()) is not None:
            yield chunk

    async def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        put = asyncio.ensure_future(self._queue.put(chunk))
        await asyncio.wait({put, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()
        if self._task.done():
            self._task.result()  # the store failed: its StorageUnavailable
            raise StorageUnavailable(f"The upload of {self.key} ended before its data did.")

    async def finish(self) -> int:
        put = asyncio.ensure_future(self._queue.put(None))
        await asyncio.wait({put, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()
        return await self._task

    async def abort(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, StorageUnavailable):
            await self._task


def copy_file(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)


async def file_chunks(path: Path, size: int) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    with open(path, "rb") as file:
        while chunk := await loop.run_in_executor(None, file.read, size):
            yield chunk


def build_storage(settings: Any, root: Path) -> MediaStorage:
    """The store the settings choose: `media.storage` local (MEDIA_ROOT, `root`) or s3 (the s3 section)."""
    if settings.media.storage == "s3":
        return S3Storage.from_settings(settings.s3)
    return LocalStorage(root)
