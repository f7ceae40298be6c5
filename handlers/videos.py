"""Videos under /api/videos/: the list, uploads, detail, edits, retranscode and watch progress."""

from __future__ import annotations

import math
from typing import Any

import tornado.web
from bson import ObjectId
from pydantic import Field, field_validator

from core.validation import Body, Query, one_of
from handlers.base import APIError, staff_only, user_only
from handlers.categories import CatalogueHandler
from handlers.openapi import api
from handlers.replies import Detail, Progress, Video, VideoPage
from handlers.streaming import StreamedBodyHandler
from handlers.upload import UploadReceiver
from services.vocabulary import STATUSES, VideoFields, VideoPatch

MIB = 1024 * 1024
# Room for the multipart framing and the text fields around the file.
FORM_OVERHEAD = MIB
MAX_SEARCH_WORDS = 10
# Beyond what MongoDB's skip takes as a 32-bit number.
MAX_OFFSET = 2**31 - 1


class ProgressBody(Body):
    position: float

    @field_validator("position", mode="before")
    @classmethod
    def a_number(cls, value: Any) -> Any:
        # strict mode would refuse an int; a bool is no position
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("A valid number is required.")
        try:
            return float(value)
        except OverflowError as err:  # an integer beyond any float: no position either
            raise ValueError("Ensure this value is a finite number.") from err

    @field_validator("position")
    @classmethod
    def finite_and_not_negative(cls, value: float) -> float:
        if not math.isfinite(value) or value < 0:
            raise ValueError("Ensure this value is greater than or equal to 0.")
        return value


class VideoListQuery(Query):
    limit: int | None = Field(None, ge=1, description="Page size: the answer becomes a page envelope.")
    offset: int | None = Field(None, ge=0, le=MAX_OFFSET, description="Start of the page.")
    status: one_of(STATUSES) | None = Field(None, description="Staff only: filter by status.")
    search: str = Field("", description="Words, all of which the title or description contains.")
    category: str | None = Field(None, description="A category's id or slug.")


class LimitQuery(Query):
    limit: int | None = Field(None, ge=1, description="At most this many (capped by the server).")


@tornado.web.stream_request_body
class VideoListHandler(StreamedBodyHandler, CatalogueHandler):
    """GET lists videos; POST streams an upload to disk (staff)."""

    upload: UploadReceiver | None = None

    async def prepare(self) -> None:
        if self.request.method == "POST":
            # Tornado checks the declared length against its limit (1 MiB) whenever it reads the body,
            # also after an early refusal (401/403/413/415): raise it first, so that a refused upload is
            # answered in JSON and the connection closed (Tornado closes it when the answer comes before
            # the body), never logged as a malformed message.
            length = self.request.headers.get("Content-Length", "")
            declared = int(length) if length.isdigit() else 0
            limit = self.config.media.max_upload_mb * MIB + FORM_OVERHEAD
            self.request.connection.set_max_body_size(max(declared, limit + MIB))
        await super().prepare()  # authenticates before a single byte of the body is read
        if self.request.method == "POST":
            self.upload = self.begin_upload()
            self.watch_body()

    def begin_upload(self) -> UploadReceiver:
        """Check type, size and disk space from the headers, then open the receiver."""
        media_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media_type != "multipart/form-data":
            raise APIError(
                415, f'Unsupported media type "{media_type}" in request; send multipart/form-data.'
            )
        limit = self.config.media.max_upload_mb * MIB + FORM_OVERHEAD
        length = self.request.headers.get("Content-Length")
        declared = int(length) if length and length.isdigit() else 0
        if declared > limit:
            raise APIError(
                413, f"The upload is larger than the limit of {self.config.media.max_upload_mb} MB."
            )
        media = self.services.media
        if media.free_bytes() < declared + self.config.media.min_free_mb * MIB:
            raise APIError(507, "Not enough disk space on the server for this upload.")
        # Our own count answers a JSON 413 first; Tornado's limit is the backstop.
        self.request.connection.set_max_body_size(max(declared, limit + MIB))
        return UploadReceiver(dict(self.request.headers), media.upload_path(ObjectId()), limit)

    async def data_received(self, chunk: bytes) -> None:
        self.body_arrived(len(chunk))
        if self.upload is None or self._finished:
            return
        try:
            await self.upload.feed(chunk)
        except APIError as err:
            self.upload.discard()
            self.upload = None
            self.send_error(err.status_code, exc_info=(type(err), err, None))

    def on_connection_close(self) -> None:
        """A client that went away mid-upload leaves no file behind (and is logged as an abort)."""
        if self.upload is not None:
            self.upload.discard()
            self.upload = None
        super().on_connection_close()

    @api(
        "Videos, newest first: ready ones (staff: all)",
        description="Without `limit` and `offset`: a JSON array; with them: a page envelope.",
        query=VideoListQuery,
        responses={200: list[Video] | VideoPage},
    )
    @user_only
    async def get(self) -> None:
        query = self.query(VideoListQuery)
        limit, offset, status, category = query.limit, query.offset or 0, query.status, query.category
        search = tuple(query.search.split()[:MAX_SEARCH_WORDS])
        if limit is not None:
            limit = min(limit, self.config.catalogue.max_page_size)
        videos, count = await self.catalogue.list_videos(
            self.current_user, status=status, category=category, search=search, offset=offset, limit=limit
        )
        if limit is None and self.get_query_argument("offset", None) is None:
            self.send_json(videos)
            return
        self.send_page(videos, count, offset, limit or count or 1)

    @api(
        "Upload a video (streamed to disk); it is probed, then transcoded",
        body=VideoFields,
        body_media_type="multipart/form-data",
        files=["file"],
        responses={201: Video},
        errors=[413, 503, 507],
    )
    @staff_only
    async def post(self) -> None:
        upload, self.upload = self.upload, None
        assert upload is not None
        try:
            if not upload.has_file:
                raise APIError(400, fields={"file": ["No file was submitted."]})
            if upload.path.stat().st_size == 0:
                raise APIError(400, fields={"file": ["The submitted file is empty."]})
            sent = {name: upload.value(name) for name in ("title", "description", "category")}
            fields = self.validate(VideoFields, {k: v for k, v in sent.items() if v is not None})
            video = await self.catalogue.add_upload(
                self.current_user,
                ObjectId(upload.path.parent.name),
                upload.path,
                fields.title,
                fields.description,
                fields.category or None,
            )
        except BaseException:
            upload.discard()
            raise
        self.send_json(video, status=201)


class ContinueWatchingHandler(CatalogueHandler):
    @api("Videos the caller started and has not finished", query=LimitQuery, responses={200: list[Video]})
    @user_only
    async def get(self) -> None:
        limit = min(self.query(LimitQuery).limit or 20, self.config.catalogue.max_page_size)
        self.send_json(await self.catalogue.continue_watching(self.current_user, limit))


class VideoHandler(CatalogueHandler):
    @api("One video", responses={200: Video})
    @user_only
    async def get(self, video_id: str) -> None:
        self.send_json(await self.catalogue.video_for(self.current_user, video_id))

    @api("Change a video's title, description or category", body=VideoPatch, responses={200: Video})
    @staff_only
    async def patch(self, video_id: str) -> None:
        body = self.parse(VideoPatch)
        fields = body.model_dump(exclude_unset=True)
        for name in ("title", "description"):
            if name in fields and fields[name] is None:
                raise APIError(400, fields={name: ["This field may not be null."]})
        self.send_json(await self.catalogue.update_video(self.current_user, video_id, fields))

    @api("Delete a video, its files and its job", responses={204: None})
    @staff_only
    async def delete(self, video_id: str) -> None:
        await self.catalogue.delete_video(video_id)
        self.set_status(204)
        self.finish()


class RetranscodeHandler(CatalogueHandler):
    @api("Transcode a video again", responses={202: Detail}, errors=[409])
    @staff_only
    async def post(self, video_id: str) -> None:
        await self.catalogue.retranscode(video_id)
        self.send_json({"detail": "Transcoding queued."}, status=202)


class ProgressHandler(CatalogueHandler):
    @api("The caller's saved position in a video", responses={200: Progress})
    @user_only
    async def get(self, video_id: str) -> None:
        self.send_json(await self.catalogue.get_progress(self.current_user, video_id))

    @api("Save the caller's position in a video", body=ProgressBody, responses={200: Progress})
    @user_only
    async def put(self, video_id: str) -> None:
        body = self.parse(ProgressBody)
        self.send_json(await self.catalogue.save_progress(self.current_user, video_id, body.position))


routes = [
    (r"/api/videos/?", VideoListHandler),
    (r"/api/videos/continue/?", ContinueWatchingHandler),
    (r"/api/videos/([^/]+)/retranscode/?", RetranscodeHandler),
    (r"/api/videos/([^/]+)/progress/?", ProgressHandler),
    (r"/api/videos/([^/]+)/?", VideoHandler),
]
