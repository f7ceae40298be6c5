"""HLS delivery: /api/stream/<grant>/... for any player, /api/video/<id>/<height>p/... with the token.

A grant is a signed, expiring token for one video and one user, carried in the path, so that relative
URIs in the playlists resolve under it and a plain <video>, hls.js or ffmpeg plays without a header.
Only the files of the video's current ladder can be named, and nothing resolves outside its folder. Where
a file is (this disk, an edge, a store) is the media module's answer (`services.media.locate`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tornado.web
from tornado.iostream import StreamClosedError

from core.errors import NotFound
from handlers.base import BaseHandler, public, user_only
from handlers.openapi import Reply, api
from services.media import MEDIA_TYPES, Body, InternalRedirect, LocalFile, Located, Redirect

FILE_REPLIES = {
    200: Reply(
        "The file: a playlist, a segment, the thumbnail or a storyboard.",
        MEDIA_TYPES,
        headers={"ETag": "size-mtime"},
    ),
    206: Reply(
        "The range asked for (Range: bytes=...).", MEDIA_TYPES, headers={"Content-Range": "bytes a-b/size"}
    ),
    304: Reply("Not modified (If-None-Match)."),
}
# With an edge (media.edge), files below the master playlist are fetched from it.
GRANT_REPLIES = {
    **FILE_REPLIES,
    302: Reply("With an edge: the URL the edge serves the file at.", headers={"Location": "the edge URL"}),
}


class MediaFileHandler(BaseHandler, tornado.web.StaticFileHandler):
    """Acts on where the media module located a file: sends it from disk (Range, ETag/304, HEAD,
    sendfile), hands it to nginx, redirects to the edge, or writes the text it made."""

    located: LocalFile | None = None
    # (path, offset, count) of the bytes send_body sends, once StaticFileHandler has set the headers
    _body: tuple[str, int, int] | None = None

    def initialize(self, **kwargs: Any) -> None:
        super().initialize(path="/")

    async def answer(self, answer: Located, include_body: bool) -> None:
        """Send the answer of `services.media.locate`."""
        if isinstance(answer, Redirect):
            self.redirect(answer.url)
        elif isinstance(answer, Body):
            self.set_header("Content-Type", answer.content_type)
            self.set_header("Cache-Control", answer.cache_control)
            self.finish(answer.text if include_body else None)
        elif isinstance(answer, InternalRedirect):
            self.set_header("Content-Type", answer.content_type)
            self.set_header("Cache-Control", answer.cache_control)
            self.set_header("X-Accel-Redirect", answer.uri)
            self.finish()
        else:
            await self.send_file(answer, include_body)

    async def send_file(self, answer: LocalFile, include_body: bool) -> None:
        self.located = answer
        self.root = str(answer.folder)
        self._body = None
        await tornado.web.StaticFileHandler.get(self, answer.name, include_body=include_body)
        if self._body is not None and self._body[2] > 0 and not self._finished:
            await self.send_body()

    def get_content_type(self) -> str:
        return self.located.content_type if self.located else "application/octet-stream"

    def set_extra_headers(self, path: str) -> None:
        if self.located is not None:
            self.set_header("Cache-Control", self.located.cache_control)

    def get_cache_time(self, path: str, modified: Any, mime_type: str) -> int:
        return 0  # Cache-Control is set above; no Expires header

    def get_content(self, abspath: str, start: int | None = None, end: int | None = None) -> Iterator[bytes]:
        """Leave the body to `send_body`: StaticFileHandler has set the status and the headers by now."""
        size = os.stat(abspath).st_size
        self._body = (abspath, start or 0, (size if end is None else end) - (start or 0))
        return iter(())

    async def send_body(self) -> None:
        """Send the file with sendfile(2) once the headers are out: the kernel copies, Python does not.

        Tornado's HTTP/1 connection counts body bytes written through it; these go around it, so it is
        told they were all sent (one private attribute of the pinned Tornado; tests cover every path).
        """
        assert self._body is not None
        path, offset, count = self._body
        connection: Any = self.request.connection  # tornado's HTTP1Connection, its stream within
        try:
            await self.flush()
            with open(path, "rb") as file:
                await asyncio.get_running_loop().sock_sendfile(connection.stream.socket, file, offset, count)
        except (StreamClosedError, OSError):
            connection.stream.close()  # the client went away: nothing more can be said on this connection
            return
        connection._expected_content_remaining = 0

    @classmethod
    def get_content_version(cls, abspath: str) -> str:
        """An ETag from size and mtime, as nginx makes it: no need to read the file to hash it."""
        stat = Path(abspath).stat()
        return f"{int(stat.st_mtime):x}-{stat.st_size:x}"

    def compute_etag(self) -> str | None:
        if not hasattr(self, "absolute_path"):
            return None  # an error answer: no ETag
        return f'"{self.get_content_version(str(self.absolute_path))}"'


GRANT_FILE: dict[str, Any] = {
    "summary": "A file of a video's ladder (HLS or DASH), under a stream grant (no header needed)",
    "description": "The grant in the path is a signed, expiring key for one video and one user, taken "
    "from a video's `hls_url` or `dash_url`; the manifests' relative URIs resolve under it.",
    "responses": GRANT_REPLIES,
    "errors": [403, 404, 416, 503],  # 503: with object storage, the store failed
    "path": {
        "grant": "The stream grant from the video's `hls_url`.",
        "name": "`master.m3u8`, `manifest.mpd`, `thumbnail.jpg`, `<height>p/index.m3u8`, `audio/index.m3u8`, "
        "or a rendition's `init.mp4` and `seg_NNNNN.m4s` (`seg_NNNNN.ts` in ladders made before CMAF).",
    },
}


class GrantStreamHandler(MediaFileHandler):
    """/api/stream/<grant>/<file>: the grant is the key; no header needed."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        # The grant is the capability, as with a presigned URL: a player on any origin may fetch it,
        # without cookies or credentials (so no Allow-Credentials next to the wildcard).
        self.clear_header("Access-Control-Allow-Credentials")
        self.set_header("Access-Control-Allow-Origin", "*")
        self.set_header("Access-Control-Expose-Headers", "Content-Range, Content-Length, ETag")

    @api(**GRANT_FILE)
    @public
    async def get(self, grant: str, name: str, include_body: bool = True) -> None:
        video = await self.services.grants.open(grant)
        await self.answer(await self.services.media.locate(video, name), include_body)

    @api(**GRANT_FILE)
    @public
    async def head(self, grant: str, name: str) -> None:
        await self.get(grant, name, include_body=False)


COURSE_SPEC_FILE: dict[str, Any] = {
    "summary": "A rendition's playlist or segment with the token (the course spec)",
    "responses": {
        **FILE_REPLIES,
        302: Reply(
            "With object storage: the URL the edge serves the file at.", headers={"Location": "the edge URL"}
        ),
    },
    "errors": [404, 416],
    "path": {
        "height": "A rung of the ladder; the nearest one below is served.",
        "file": "`index.m3u8` or a segment.",
    },
}


class CourseSpecHandler(MediaFileHandler):
    """/api/video/<id>/<height>p/<index.m3u8 | segment> with the token header (the course spec)."""

    @api(**COURSE_SPEC_FILE)
    @user_only
    async def get(self, video_id: str, height: str, file: str, include_body: bool = True) -> None:
        video = await self.services.grants.streamable(video_id)
        if not self.services.catalogue.may_see(self.user, video):
            raise NotFound()
        rung = video.nearest_rung(int(height))
        if rung is None:
            raise NotFound()
        if file == "index.m3u8":  # a CMAF rung is its picture alone: give the player its sound too
            base = self.services.grants.stream_base(video, self.user)
            master = await self.services.media.course_spec_master(video, rung, base)
            if master is not None:
                await self.answer(master, include_body)
                return
        name = f"{rung}p/{file}"
        answer = await self.services.media.locate(video, name, course_spec=True)
        await self.answer(answer, include_body)

    @api(**COURSE_SPEC_FILE)
    @user_only
    async def head(self, video_id: str, height: str, file: str) -> None:
        await self.get(video_id, height, file, include_body=False)


class EdgePlaylistHandler(BaseHandler):
    """/api/edge/<token>/<expires>/videos/<id>/<ladder>/<rendition>/index.m3u8 (a rung's ``<height>p``
    or ``audio``): a rendition's playlist from the object store, its init and media segments presigned
    for the window the URL names. The token (not a user)
    authorises it, so the answer depends on the URL alone and a shared cache keeps one copy per window."""

    @api(
        "A variant playlist with presigned segment URLs (object storage behind an edge)",
        responses={
            200: Reply(
                "The playlist.", ("application/vnd.apple.mpegurl",), headers={"Cache-Control": "public"}
            )
        },
        errors=[403, 404, 503],
        path={
            "token": "The edge token the master playlist gave.",
            "expires": "When the token expires (Unix seconds).",
            "video_id": "The video.",
            "ladder": "The ladder's folder.",
            "rendition": "The rendition: a rung (`720p`) or `audio`.",
        },
    )
    @public
    async def get(self, token: str, expires: str, video_id: str, ladder: str, rendition: str) -> None:
        answer = await self.services.media.edge_playlist(token, int(expires), video_id, ladder, rendition)
        self.set_header("Content-Type", answer.content_type)
        self.set_header("Cache-Control", answer.cache_control)
        self.finish(answer.text)


routes = [
    (r"/api/stream/([^/]+)/(.+)", GrantStreamHandler),
    (
        r"/api/edge/([A-Za-z0-9_-]+)/(\d{1,12})/videos/([0-9a-f]{24})/(hls-[A-Za-z0-9_-]+)/"
        r"(\d{2,4}p|av1-\d{2,4}p|audio|audio-[0-9a-f]{6,24}|subs-[0-9a-f]{6,24})/index\.m3u8",
        EdgePlaylistHandler,
    ),
    (r"/api/video/([^/]+)/(\d{2,4})p/([^/]+?)/?", CourseSpecHandler),
]
