"""Streaming a multipart upload straight to disk, into the file the upload service gives: memory stays
flat whatever the size."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path
from typing import BinaryIO

from streaming_form_data import StreamingFormDataParser
from streaming_form_data.parser import ParseFailedException
from streaming_form_data.targets import BaseTarget, ValueTarget
from streaming_form_data.validators import MaxSizeValidator, ValidationError

from handlers.base import APIError

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
