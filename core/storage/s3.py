"""The S3 store: one bucket of any S3-compatible store, through aiobotocore, and its presigner."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import AsyncIterable, Collection
from datetime import UTC, datetime
from pathlib import Path
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

from core.storage.base import (
    DEFAULT_PART_SIZE,
    MiB,
    ObjectMissing,
    StorageBackend,
    StorageUnavailable,
    cache_control,
    check_key,
    check_prefix,
    content_type,
    file_chunks,
    files_below,
)

log = logging.getLogger("videoflix.storage")

STORE_ERRORS: tuple[type[BaseException], ...] = (BotoCoreError, ClientError, OSError, asyncio.TimeoutError)
# What a retried store call may raise: the store's own errors, or one already made a domain error.
RETRIED: tuple[type[BaseException], ...] = (*STORE_ERRORS, StorageUnavailable)

# What S3-compatible stores answer for a key that is not there.
MISSING_CODES = ("404", "NoSuchKey", "NotFound")


def is_missing(err: BaseException) -> bool:
    """True when a store error says the object does not exist."""
    return isinstance(err, ClientError) and err.response.get("Error", {}).get("Code") in MISSING_CODES


def redact(url: str | None) -> str:
    """An endpoint as it may be shown: without user:password@, if someone put one there."""
    if not url:
        return "the S3 store"
    parts = urlsplit(url)
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class S3Storage(StorageBackend):
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
        return str(answer["UploadId"])

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

    async def begin_parts(self, key: str) -> str:
        return await self._begin(check_key(key))

    async def put_part(self, key: str, upload_id: str, number: int, data: bytes) -> dict[str, Any]:
        answer = await self._call(
            "store part of " + key,
            self.client.upload_part,
            Bucket=self.bucket,
            Key=check_key(key),
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    async def complete_parts(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        await self._call(
            "complete the upload of " + key,
            self.client.complete_multipart_upload,
            Bucket=self.bucket,
            Key=check_key(key),
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )

    async def abort_parts(self, key: str, upload_id: str) -> None:
        await self._abort(check_key(key), upload_id)

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
                return bytes(await body.read())
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
        control = cache_control(key)
        extra = {"CacheControl": control} if control else {}
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
            except RETRIED as err:
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
        return str(request.url)


class PinnedS3QueryAuth(S3SigV4QueryAuth):  # type: ignore[misc]  # botocore ships no types
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
