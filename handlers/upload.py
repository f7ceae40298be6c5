"""Streaming a multipart upload straight to disk, into the file the upload service gives: memory stays
flat whatever the size."""

from __future__ import annotations

import abc
import asyncio
import errno
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from streaming_form_data import StreamingFormDataParser
from streaming_form_data.parser import ParseFailedException
from streaming_form_data.targets import BaseTarget, ValueTarget
from streaming_form_data.validators import MaxSizeValidator, ValidationError

from handlers.base import APIError
from handlers.streaming import StreamedBodyHandler
from services.uploads import FORM_OVERHEAD  # the multipart framing and the text fields

FIELDS = ("title", "description", "category")
FIELD_MAX_BYTES = 64 * 1024


class DiskTarget(BaseTarget):  # type: ignore[misc]  # streaming_form_data ships no types
    """Writes the file part to disk through a thread, so a slow disk never stalls the IOLoop."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._fd: BinaryIO | None = None

    async def on_start_async(self) -> None:
        self._fd = open(self.path, "wb")  # noqa: SIM115 (closed in on_finish_async or close)

    async def on_data_received_async(self, chunk: bytes) -> None:
        assert self._fd is not None
        await asyncio.get_running_loop().run_in_executor(None, self._fd.write, chunk)

    async def on_finish_async(self) -> None:
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            self._fd.close()
            self._fd = None

    @property
    def finished(self) -> bool:
        return self._finished


class UploadReceiver:
    """Feeds request chunks to a streaming multipart parser: `file` to disk, the other fields to memory."""

    def __init__(
        self, headers: dict[str, str], path: Path, limit_bytes: int, fields: tuple[str, ...] = FIELDS
    ) -> None:
        self.path = path
        self.limit_bytes = limit_bytes
        self.received = 0
        try:
            self.parser = StreamingFormDataParser(headers=headers)
        except ParseFailedException as err:
            raise APIError(400, "Multipart form data without a boundary.") from err
        self.file = DiskTarget(path)
        self.parser.register("file", self.file)
        self.fields = {name: ValueTarget(validator=MaxSizeValidator(FIELD_MAX_BYTES)) for name in fields}
        for name, target in self.fields.items():
            self.parser.register(name, target)

    async def feed(self, chunk: bytes) -> None:
        """Take the next chunk of the body; APIError when it is too large, malformed, or the disk is full."""
        self.received += len(chunk)
        if self.received > self.limit_bytes:
            raise APIError(
                413, f"The upload is larger than the limit of {self.limit_bytes // (1024 * 1024)} MB."
            )
        try:
            await self.parser.adata_received(chunk)
        except ValidationError as err:
            raise APIError(400, "A form field is too long.") from err
        except ParseFailedException as err:
            raise APIError(400, "The multipart form data is malformed.") from err
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise APIError(507, "The server ran out of disk space for this upload.") from err
            raise

    @property
    def has_file(self) -> bool:
        """True once the file part arrived whole."""
        return self.file.finished

    def value(self, name: str) -> str | None:
        """A text field as sent, or None when absent."""
        target = self.fields[name]
        if not target._started:
            return None
        try:
            return target.value.decode("utf-8")
        except UnicodeDecodeError as err:
            raise APIError(400, fields={name: ["Not valid UTF-8 text."]}) from err

    def close(self) -> None:
        """Stop writing (the upload service removes what was written)."""
        self.file.close()


MIB = 1024 * 1024


class MultipartUploadHandler(StreamedBodyHandler, metaclass=abc.ABCMeta):
    """A POST whose multipart body streams into the file an ingest gives (`open_ingest`): refused in
    JSON before a byte is read when it cannot be taken (type, size, room), and removed when it is
    refused or its client goes away. The subclass's `post` reads `self.upload` and `self.ingest`."""

    upload: UploadReceiver | None = None
    ingest: Any = None  # what open_ingest gives: .path, .limit_bytes, .discard()
    form_fields: tuple[str, ...] = FIELDS  # the text fields besides `file`
    # Removals of abandoned uploads under way (kept so they are not collected).
    discards: ClassVar[set[asyncio.Task[None]]] = set()

    @abc.abstractmethod
    async def open_ingest(self, declared: int) -> Any:
        """Room for an upload of `declared` bytes (size and free space checked) and its file."""

    async def prepare(self) -> None:
        declared = 0
        if self.request.method == "POST":
            # Tornado checks the declared length against its limit (1 MiB) whenever it reads the body,
            # also after an early refusal (401/403/413/415): raise it first, so that a refused upload is
            # answered in JSON and the connection closed (Tornado closes it when the answer comes before
            # the body), never logged as a malformed message.
            length = self.request.headers.get("Content-Length", "")
            declared = int(length) if length.isdigit() else 0
            limit = self.config.media.max_upload_mb * MIB + FORM_OVERHEAD
            self.allow_body(max(declared, limit + MIB))
        await super().prepare()  # authenticates before a single byte of the body is read
        if self.request.method == "POST":
            self.upload = await self.begin_upload(declared)
            self.watch_body()

    async def begin_upload(self, declared: int) -> UploadReceiver:
        """Check the type, then ask for room and a file."""
        media_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media_type != "multipart/form-data":
            raise APIError(
                415, f'Unsupported media type "{media_type}" in request; send multipart/form-data.'
            )
        self.ingest = await self.open_ingest(declared)
        # Our own count answers a JSON 413 first; Tornado's limit is the backstop.
        self.allow_body(max(declared, self.ingest.limit_bytes + MIB))
        return UploadReceiver(
            dict(self.request.headers), self.ingest.path, self.ingest.limit_bytes, self.form_fields
        )

    async def data_received(self, chunk: bytes) -> None:
        self.body_arrived(len(chunk))
        if self.upload is None or self._finished:
            return
        try:
            await self.upload.feed(chunk)
        except APIError as err:
            await self.discard()
            self.send_error(err.status_code, exc_info=(type(err), err, None))

    async def discard(self) -> None:
        """Nothing of a refused or abandoned upload stays."""
        upload, self.upload = self.upload, None
        ingest, self.ingest = self.ingest, None
        if upload is not None:
            upload.close()
        if ingest is not None:
            await ingest.discard()

    def on_connection_close(self) -> None:
        """A client that went away mid-upload leaves no file behind (and is logged as an abort)."""
        if self.upload is not None:
            task = asyncio.get_running_loop().create_task(self.discard())
            self.discards.add(task)
            task.add_done_callback(self.discards.discard)
        super().on_connection_close()
