"""My list under /api/videos/mylist/ (the list) and /api/videos/<id>/mylist/ (add, remove)."""

from __future__ import annotations

from pydantic import Field

from core.validation import Query
from handlers.base import BaseHandler, user_only
from handlers.openapi import api
from handlers.replies import Video, VideoPage

MAX_OFFSET = 2**31 - 1


class PageQuery(Query):
    limit: int | None = Field(None, ge=1, description="Page size: the answer becomes a page envelope.")
    offset: int | None = Field(None, ge=0, le=MAX_OFFSET, description="Start of the page.")


class MyListHandler(BaseHandler):
    @api(
        "The caller's list, most recently added first",
        description="Without `limit` and `offset`: a JSON array; with them: a page envelope.",
        query=PageQuery,
        responses={200: list[Video] | VideoPage},
    )
    @user_only
    async def get(self) -> None:
        query = self.query(PageQuery)
        offset, limit = query.offset or 0, query.limit
        if limit is not None:
            limit = min(limit, self.config.catalogue.max_page_size)
        videos, count = await self.services.mylist.page(self.user, offset, limit)
        shown = [Video.of(video) for video in videos]
        if limit is None and self.get_query_argument("offset", None) is None:
            self.send_json(shown)
            return
        self.send_page(shown, count, offset, limit or count or 1)


class MyListEntryHandler(BaseHandler):
    @api("Put a video on the caller's list", responses={204: None})
    @user_only
    async def put(self, video_id: str) -> None:
        await self.services.mylist.add(self.user, video_id)
        self.set_status(204)
        self.finish()

    @api("Take a video off the caller's list", responses={204: None})
    @user_only
    async def delete(self, video_id: str) -> None:
        await self.services.mylist.remove(self.user, video_id)
        self.set_status(204)
        self.finish()


routes = [
    (r"/api/videos/mylist/?", MyListHandler),
    (r"/api/videos/([^/]+)/mylist/?", MyListEntryHandler),
]
