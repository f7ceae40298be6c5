"""Resumable uploads for staff under /api/uploads/: tus 1.0.0 with creation, termination, expiration
and checksum. The rules live in services/uploads.py; this module speaks the protocol's headers."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC
from email.utils import format_datetime
from typing import Any

import tornado.web

from core.errors import DomainError
from core.validation import MAXIMUM_SETTING
from handlers.base import HTTP_METHODS, APIError, BaseHandler, public, staff_only
from handlers.openapi import Header, Reply, api
from handlers.streaming import StreamedBodyHandler
from services.upload_chunks import CHECKSUM_ALGORITHMS, Checksum, Chunk
from services.uploads import UploadService
from services.vocabulary import VideoFields

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,expiration,checksum"
OFFSET_OCTET_STREAM = "application/offset+octet-stream"
# What a browser on an allowed origin may send, and read back.
TUS_REQUEST_HEADERS = (
    "Authorization, Content-Type, Tus-Resumable, Upload-Length, Upload-Metadata, Upload-Offset, "
    "Upload-Checksum"
)
TUS_EXPOSED_HEADERS = (
    "Location, Upload-Offset, Upload-Length, Upload-Expires, Tus-Resumable, Tus-Version, "
    "Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm, Video-Id, Retry-After"
)
METADATA_FIELDS = ("title", "description", "category")
# The metadata values read as text; any other key's value is the client's bytes, left alone.
TEXT_KEYS = (*METADATA_FIELDS, "filename")
MIB = 1024 * 1024

# What the request headers may hold, declared where the handlers below check it (the version in
# TusHandler.prepare, numbers in whole_number, metadata in parse_metadata): the document shows it.
BASE64 = r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
SOME_BASE64 = r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)"
METADATA_PAIR = rf"[\x21-\x2b\x2d-\x7e]+(?: {BASE64})?"  # a key of printable ASCII but space and comma
METADATA_MAX_CHARS = 32 * 1024  # room for a 5,000-character description in any script, in base64
METADATA_SCHEMA = {
    "type": "string",
    "pattern": rf"^(?:{METADATA_PAIR},)*title {SOME_BASE64}(?:,{METADATA_PAIR})*$",
    "maxLength": METADATA_MAX_CHARS,
}
BYTES = {"type": "integer", "minimum": 0}

TUS_RESUMABLE = Header(
    "Tus-Resumable",
    "The protocol version: 1.0.0 (another answers 412).",
    schema={"type": "string", "enum": [TUS_VERSION]},
)
OPTIONS_HEADERS = {
    "Tus-Resumable": "1.0.0.",
    "Tus-Version": "The protocol versions supported: 1.0.0.",
    "Tus-Extension": "creation, termination, expiration, checksum.",
    "Tus-Max-Size": "The largest upload, in bytes (media.max_upload_mb).",
    "Tus-Checksum-Algorithm": "sha1.",
}
PROGRESS_HEADERS = {
    "Tus-Resumable": "1.0.0.",
    "Upload-Offset": "Bytes received so far.",
    "Upload-Expires": "When an unfinished upload is removed (RFC 7231 date).",
}


def http_date(moment: Any) -> str:
    """An RFC 7231 date (the database's own UTC zone is not the one `usegmt` asks for)."""
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def parse_metadata(header: str) -> dict[str, str]:
    """`Upload-Metadata`: comma-separated `key base64(value)` pairs (a value may be absent). The
    values this server reads (TEXT_KEYS) must be UTF-8 text; any other is bytes it ignores."""
    if len(header) > METADATA_MAX_CHARS:
        raise APIError(
            400,
            fields={
                "Upload-Metadata": [f"Ensure this header has no more than {METADATA_MAX_CHARS} characters."]
            },
        )
    pairs: dict[str, str] = {}
    for item in header.split(","):
        item = item.strip()
        if not item:
            continue
        key, _, value = item.partition(" ")
        if key in pairs:
            raise APIError(400, fields={"Upload-Metadata": [f'The key "{key}" appears twice.']})
        try:
            raw = base64.b64decode(value.strip(), validate=True)
            pairs[key] = raw.decode("utf-8") if key in TEXT_KEYS else ""
        except (binascii.Error, UnicodeDecodeError) as err:
            raise APIError(400, fields={key: ["Not base64-encoded UTF-8 text."]}) from err
    return pairs


def whole_number(name: str, value: str | None) -> int | None:
    """A header holding a non-negative integer; None when absent, a 400 naming it when it is not."""
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or not value.isascii():
        raise APIError(400, fields={name: ["A whole number of bytes is required."]})
    return int(value)


class TusHandler(BaseHandler):
    """Every answer carries Tus-Resumable; a client of another protocol version is refused (412)."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Tus-Resumable", TUS_VERSION)
        if self._headers.get("Access-Control-Allow-Origin"):
            self.set_header("Access-Control-Expose-Headers", TUS_EXPOSED_HEADERS)

    async def prepare(self) -> None:
        await super().prepare()
        method = self.request.method.lower()
        if method == "options" or not self._implements(method):
            return  # discovery needs no version; an undeclared method is a 405 whatever it sends
        version = self.request.headers.get("Tus-Resumable")
        if version is not None and version.strip() != TUS_VERSION:
            raise APIError(
                412,
                f"Tus-Resumable {version} is not supported; use 1.0.0.",
                headers={"Tus-Version": TUS_VERSION},
            )

    @property
    def uploads(self) -> UploadService:
        return self.services.uploads

    @api(
        "tus discovery, and the CORS preflight of the upload routes",
        responses={204: Reply("The protocol's capabilities.", headers=OPTIONS_HEADERS)},
    )
    @public
    def options(self, *args: str) -> None:
        self.set_status(204)
        self.set_header("Tus-Version", TUS_VERSION)
        self.set_header("Tus-Extension", TUS_EXTENSIONS)
        self.set_header("Tus-Max-Size", str(self.uploads.max_bytes))
        self.set_header("Tus-Checksum-Algorithm", ",".join(CHECKSUM_ALGORITHMS))
        if self._headers.get("Access-Control-Allow-Origin"):
            methods = [m.upper() for m in HTTP_METHODS if self._implements(m)]
            self.set_header("Access-Control-Allow-Methods", ", ".join(methods))
            self.set_header("Access-Control-Allow-Headers", TUS_REQUEST_HEADERS)
            self.set_header("Access-Control-Max-Age", "600")
        self.clear_header("Content-Type")
        self.finish()

    def location(self, upload_id: Any) -> str:
        """The absolute URL of an upload (on server.public_url when it is set)."""
        base = getattr(self.config.server, "public_url", None)
        base = base.rstrip("/") if base else f"{self.request.protocol}://{self.request.host}"
        return f"{base}/api/uploads/{upload_id}/"

    def answer_empty(self, status: int) -> None:
        self.set_status(status)
        self.clear_header("Content-Type")
        self.finish()


class UploadCreateHandler(TusHandler):
    """POST /api/uploads/ creates an upload (the creation extension)."""

    @api(
        "Create a resumable (tus) upload; it becomes a video once all its bytes have arrived",
        description="`Upload-Metadata` carries the video's fields as tus pairs (base64 values): "
        "`title` (required), `description`, `category` (an id or slug) and `filename`.",
        headers=[
            TUS_RESUMABLE,
            Header(
                "Upload-Length",
                "The size of the whole file in bytes, up to media.max_upload_mb.",
                required=True,
                schema={**BYTES, "minimum": 1, MAXIMUM_SETTING: "max_upload_bytes"},
            ),
            Header(
                "Upload-Metadata",
                "`key base64,...`: title (required), description, category, filename.",
                required=True,
                schema=METADATA_SCHEMA,
            ),
        ],
        responses={
            201: Reply(
                "Created.",
                headers={
                    "Location": "The upload's absolute URL.",
                    "Tus-Resumable": "1.0.0.",
                    "Upload-Expires": "When the upload expires unless it progresses (RFC 7231 date).",
                },
            )
        },
        errors=[400, 412, 413, 507],
    )
    @staff_only
    async def post(self) -> None:
        headers = self.request.headers
        if headers.get("Upload-Defer-Length") is not None:
            raise APIError(400, "Upload-Defer-Length is not supported; send Upload-Length.")
        length = whole_number("Upload-Length", headers.get("Upload-Length"))
        if length is None:
            raise APIError(400, fields={"Upload-Length": ["This header is required."]})
        metadata = parse_metadata(headers.get("Upload-Metadata", ""))
        sent = {name: metadata[name] for name in METADATA_FIELDS if name in metadata}
        fields = self.validate(VideoFields, sent).model_dump()
        doc = await self.uploads.create(self.user, length, fields, metadata.get("filename"))
        self.set_header("Location", self.location(doc["_id"]))
        self.set_header("Upload-Expires", http_date(doc["expires_at"]))
        self.answer_empty(201)


@tornado.web.stream_request_body
class UploadHandler(StreamedBodyHandler, TusHandler):
    """HEAD reports, PATCH appends (streamed to the store), DELETE terminates one upload."""

    chunk: Chunk | None = None

    async def prepare(self) -> None:
        await super().prepare()  # authenticated before a single byte of the body is read
        if self.request.method == "PATCH":
            self.chunk = await self.begin_patch(self.path_args[0])
            self.watch_body()

    async def begin_patch(self, upload_id: str) -> Chunk:
        headers = self.request.headers
        media_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media_type != OFFSET_OCTET_STREAM:
            raise APIError(
                415, f'Unsupported media type "{media_type}" in request; send {OFFSET_OCTET_STREAM}.'
            )
        offset = whole_number("Upload-Offset", headers.get("Upload-Offset"))
        if offset is None:
            raise APIError(400, fields={"Upload-Offset": ["This header is required."]})
        checksum = Checksum.parse(headers.get("Upload-Checksum"))
        declared = whole_number("Content-Length", headers.get("Content-Length"))
        chunk = await self.uploads.begin_patch(self.user, upload_id, offset, declared, checksum)
        # The chunk counts against Upload-Length itself; Tornado's limit is the backstop.
        self.allow_body(chunk.room + MIB)
        return chunk

    async def data_received(self, data: bytes) -> None:
        self.body_arrived(len(data))
        if self.chunk is None or self._finished:
            return
        try:
            await self.chunk.write(data)
        except DomainError as err:
            self.chunk = None  # ended by write
            self.send_error(500, exc_info=(type(err), err, None))

    def on_connection_close(self) -> None:
        """A dropped connection keeps what arrived; the client resumes from there, on any process."""
        if self.chunk is not None:
            self.chunk.abandon()
            self.chunk = None
        super().on_connection_close()

    def progress_headers(self, doc: dict[str, Any], offset: int) -> None:
        self.set_header("Upload-Offset", str(offset))
        self.set_header("Upload-Length", str(doc["length"]))
        if doc.get("video_id"):
            self.set_header("Video-Id", str(doc["video_id"]))
        else:
            self.set_header("Upload-Expires", http_date(doc["expires_at"]))

    @api(
        "How much of a resumable upload has arrived",
        headers=[TUS_RESUMABLE],
        responses={
            200: Reply(
                "No body; the progress is in the headers.",
                headers={
                    **PROGRESS_HEADERS,
                    "Upload-Length": "The size of the whole file.",
                    "Video-Id": "The video the upload became, once complete.",
                },
            )
        },
        errors=[410, 412],
        path={"upload_id": "The upload's id (the last part of its Location)."},
    )
    @staff_only
    async def head(self, upload_id: str) -> None:
        doc, offset = await self.uploads.status(self.user, upload_id)
        self.progress_headers(doc, offset)
        self.answer_empty(200)

    @api(
        "Append bytes to a resumable upload at its offset",
        description="The last PATCH, which completes the upload, probes the file and creates the video "
        '(answered with `Video-Id`); a file that is not a video answers 400 `{"file": [...]}` and the '
        "upload is removed. A body whose `Upload-Checksum` does not match answers 460 and is dropped. "
        "While another PATCH (on any server process) writes to the upload, 423 with `Retry-After`.",
        raw_body=OFFSET_OCTET_STREAM,
        headers=[
            TUS_RESUMABLE,
            Header(
                "Upload-Offset",
                "Where the body goes: the upload's current offset.",
                required=True,
                schema=BYTES,
            ),
            Header(
                "Upload-Checksum",
                "`sha1 <base64 digest>` of this body.",
                schema={"type": "string", "pattern": rf"^sha1 {BASE64}$"},
            ),
        ],
        responses={
            204: Reply(
                "Appended.",
                headers={
                    **PROGRESS_HEADERS,
                    "Video-Id": "The new video's id, when this completed the upload.",
                },
            )
        },
        errors=[400, 409, 410, 412, 413, 423, 460, 503, 507],
        path={"upload_id": "The upload's id (the last part of its Location)."},
    )
    @staff_only
    async def patch(self, upload_id: str) -> None:
        chunk, self.chunk = self.chunk, None
        if chunk is None or self._finished:
            return  # already answered while the body streamed in
        offset, expires_at, video = await chunk.finish()
        self.set_header("Upload-Offset", str(offset))
        if video is not None:
            self.set_header("Video-Id", str(video.id))
        else:
            self.set_header("Upload-Expires", http_date(expires_at))
        self.answer_empty(204)

    @api(
        "Terminate a resumable upload: its bytes are removed (a video it became stays)",
        headers=[TUS_RESUMABLE],
        responses={204: Reply("Terminated.", headers={"Tus-Resumable": "1.0.0."})},
        errors=[409, 412],
        path={"upload_id": "The upload's id (the last part of its Location)."},
    )
    @staff_only
    async def delete(self, upload_id: str) -> None:
        await self.uploads.terminate(self.user, upload_id)
        self.answer_empty(204)


routes = [
    (r"/api/uploads/?", UploadCreateHandler),
    (r"/api/uploads/([^/]+)/?", UploadHandler),
]
