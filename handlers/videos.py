"""Videos under /api/videos/: the list, uploads, detail, edits, retranscode and watch progress."""

from __future__ import annotations

import tornado.web
from pydantic import Field

from core.validation import Body, Query, one_of
from handlers.base import APIError, staff_only, user_only
from handlers.categories import CatalogueHandler
from handlers.openapi import api
from handlers.replies import Detail, Progress, Video, VideoPage
from handlers.upload import MultipartUploadHandler
from services.catalogue import NEWEST, ORDERINGS
from services.uploads import Ingest
from services.vocabulary import STATUSES, VideoFields, VideoPatch

MAX_SEARCH_WORDS = 10
# Beyond what MongoDB's skip takes as a 32-bit number.
MAX_OFFSET = 2**31 - 1


class ProgressBody(Body):
    """A finite number of seconds from 0; past the video's duration it is saved as the duration."""

    position: float = Field(ge=0, allow_inf_nan=False, description="Seconds from the start.")


class VideoListQuery(Query):
    limit: int | None = Field(None, ge=1, description="Page size: the answer becomes a page envelope.")
    offset: int | None = Field(None, ge=0, le=MAX_OFFSET, description="Start of the page.")
    status: one_of(STATUSES) | None = Field(None, description="Staff only: filter by status.")
    search: str = Field("", description="Words, all of which the title or description contains.")
    category: str | None = Field(None, description="A category's id or slug.")
    ordering: one_of(ORDERINGS) | None = Field(
        None, description="`newest` (the default) or `popular`: by views in the last 7 days."
    )


class LimitQuery(Query):
    limit: int | None = Field(None, ge=1, description="At most this many (capped by the server).")


@tornado.web.stream_request_body
class VideoListHandler(MultipartUploadHandler, CatalogueHandler):
    """GET lists videos; POST streams an upload into the file the upload service gives (staff)."""

    async def open_ingest(self, declared: int) -> Ingest:
        return await self.services.uploads.open_ingest(declared)

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
            self.user,
            status=status,
            category=category,
            search=search,
            offset=offset,
            limit=limit,
            ordering=query.ordering or NEWEST,
        )
        shown = [Video.of(video) for video in videos]
        if limit is None and self.get_query_argument("offset", None) is None:
            self.send_json(shown)
            return
        self.send_page(shown, count, offset, limit or count or 1)

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
        upload, ingest = self.upload, self.ingest
        assert upload is not None and ingest is not None
        try:
            if not upload.has_file:
                raise APIError(400, fields={"file": ["No file was submitted."]})
            sent = {name: upload.value(name) for name in ("title", "description", "category")}
            fields = self.validate(VideoFields, {k: v for k, v in sent.items() if v is not None})
        except BaseException:
            await self.discard()
            raise
        self.upload = self.ingest = None
        upload.close()
        video = await self.services.uploads.add_ingest(self.user, ingest, fields)
        self.send_json(Video.of(video), status=201)


class ContinueWatchingHandler(CatalogueHandler):
    @api("Videos the caller started and has not finished", query=LimitQuery, responses={200: list[Video]})
    @user_only
    async def get(self) -> None:
        limit = min(self.query(LimitQuery).limit or 20, self.config.catalogue.max_page_size)
        videos = await self.catalogue.continue_watching(self.user, limit)
        self.send_json([Video.of(video) for video in videos])


class VideoHandler(CatalogueHandler):
    @api("One video", responses={200: Video})
    @user_only
    async def get(self, video_id: str) -> None:
        self.send_json(Video.of(await self.catalogue.video_for(self.user, video_id)))

    @api("Change a video's title, description or category", body=VideoPatch, responses={200: Video})
    @staff_only
    async def patch(self, video_id: str) -> None:
        body = self.parse(VideoPatch)
        fields = body.model_dump(exclude_unset=True)
        self.send_json(Video.of(await self.catalogue.update_video(self.user, video_id, fields)))

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
        self.send_json(await self.catalogue.get_progress(self.user, video_id))

    @api("Save the caller's position in a video", body=ProgressBody, responses={200: Progress})
    @user_only
    async def put(self, video_id: str) -> None:
        body = self.parse(ProgressBody)
        self.send_json(await self.catalogue.save_progress(self.user, video_id, body.position))


routes = [
    (r"/api/videos/?", VideoListHandler),
    (r"/api/videos/continue/?", ContinueWatchingHandler),
    (r"/api/videos/([^/]+)/retranscode/?", RetranscodeHandler),
    (r"/api/videos/([^/]+)/progress/?", ProgressHandler),
    (r"/api/videos/([^/]+)/?", VideoHandler),
]
