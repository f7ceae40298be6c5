"""HLS delivery: /api/stream/<grant>/... for any player, /api/video/<id>/<height>p/... with the token.

A grant is a signed, expiring token for one video and one user, carried in the path, so that relative
URIs in the playlists resolve under it and a plain <video>, hls.js or ffmpeg plays without a header.
Only the files of the video's current ladder can be named, and nothing resolves outside its folder.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tornado.web
from tornado.iostream import StreamClosedError

from core.edge import S3Edge
from core.errors import Forbidden, NotFound
from handlers.base import BaseHandler, public, user_only
from handlers.openapi import Reply, api
from models.videos import is_finished_ladder, ladder_folder, playable_path

# The only names a ladder has: anything else (traversal, encodings, NUL) is simply not found.
FILE = re.compile(
    r"^(master\.m3u8|thumbnail\.jpg|storyboard\.vtt|(storyboard|sprite)(_\d{1,4})?\.jpg"
    r"|(\d{2,4})p/(index\.m3u8|seg_\d{5}\.ts))$"
)
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".jpg": "image/jpeg",
    ".vtt": "text/vtt; charset=utf-8",
}
# Segments never change (a new ladder gets a new folder); playlists and thumbnails may be re-made.
CACHE_CONTROL = {
    ".ts": "private, max-age=31536000, immutable",
    ".m3u8": "private, max-age=60",
    ".jpg": "private, max-age=3600",
    ".vtt": "private, max-age=3600",
}
# A playlist that still grows (the video plays while it is transcoded) must be asked for again.
GROWING_PLAYLIST = "private, no-cache"


MEDIA = tuple(media.split(";")[0] for media in CONTENT_TYPES.values())
FILE_REPLIES = {
    200: Reply(
        "The file: a playlist, a segment, the thumbnail or a storyboard.",
        MEDIA,
        headers={"ETag": "size-mtime"},
    ),
    206: Reply("The range asked for (Range: bytes=...).", MEDIA, headers={"Content-Range": "bytes a-b/size"}),
    304: Reply("Not modified (If-None-Match)."),
}
# With an edge (media.edge), files below the master playlist are fetched from it.
GRANT_REPLIES = {
    **FILE_REPLIES,
    302: Reply("With an edge: the URL the edge serves the file at.", headers={"Location": "the edge URL"}),
}


class MediaFileHandler(BaseHandler, tornado.web.StaticFileHandler):
    """Serves one file of a video's ladder: Range, ETag/304, HEAD, Cache-Control, chunked reads."""

    growing = False

    def initialize(self, **kwargs: Any) -> None:
        super().initialize(path="/")

    async def serve(self, video: dict[str, Any], name: str, include_body: bool) -> None:
        """Send `name` from the video's ladder folder (finished or still growing), or 404."""
        media = self.services.media
        path = playable_path(video)
        self.growing = not is_finished_ladder(video)
        folder = media.ladder_folder(path) if path else None
        target = ladder_file(folder, name) if folder else None
        if target is None:
            raise NotFound()
        accel = self.config.media.accel_redirect
        if accel:
            self.hand_to_nginx(accel, media.relative(target), target.suffix)
            return
        self.root = str(folder)
        self._body = None
        await tornado.web.StaticFileHandler.get(self, name, include_body=include_body)
        if self._body is not None and self._body[2] > 0 and not self._finished:
            await self.send_body()

    def hand_to_nginx(self, prefix: str, relative: str, suffix: str) -> None:
        """X-Accel-Redirect: nginx sends the bytes from its internal location (Range and all)."""
        self.set_header("Content-Type", CONTENT_TYPES[suffix])
        self.set_header("Cache-Control", self.cache_control(suffix))
        self.set_header("X-Accel-Redirect", prefix.rstrip("/") + "/" + relative)
        self.finish()

    def get_content_type(self) -> str:
        return CONTENT_TYPES.get(Path(self.absolute_path).suffix, "application/octet-stream")

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", self.cache_control(Path(path).suffix))

    def cache_control(self, suffix: str) -> str:
        if suffix == ".m3u8" and self.growing:
            return GROWING_PLAYLIST
        return CACHE_CONTROL.get(suffix, "private, no-cache")

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
        path, offset, count = self._body
        connection = self.request.connection
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
        return f'"{self.get_content_version(self.absolute_path)}"'


GRANT_FILE = {
    "summary": "A file of a video's HLS ladder, under a stream grant (no header needed)",
    "description": "The grant in the path is a signed, expiring key for one video and one user, taken "
    "from a video's `hls_url`; the playlists' relative URIs resolve under it.",
    "responses": GRANT_REPLIES,
    "errors": [403, 404, 416, 503],  # 503: with object storage, the store failed
    "path": {
        "grant": "The stream grant from the video's `hls_url`.",
        "name": "`master.m3u8`, `thumbnail.jpg`, `<height>p/index.m3u8` or `<height>p/seg_NNNNN.ts`.",
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
        if not FILE.match(name):
            raise NotFound()
        edge = self.services.edge
        if edge is not None and (is_finished_ladder(video) or edge.ladders_in_store):
            await self.send_through_edge(edge, video, name, include_body)
            return
        await self.serve(video, name, include_body)

    async def send_through_edge(
        self, edge: Any, video: dict[str, Any], name: str, include_body: bool
    ) -> None:
        """With an edge, this server answers only the master playlist, its URIs rewritten to URLs the edge
        checks on its own; anything else is a redirect to the edge's own URL for it."""
        folder = ladder_folder(video)
        if name != "master.m3u8":
            self.redirect(edge.url(folder, name))
            return
        text = (await self.services.storage.read_bytes(f"{folder}/master.m3u8")).decode()
        self.set_header("Content-Type", CONTENT_TYPES[".m3u8"])
        self.set_header("Cache-Control", "private, no-store")  # the authorisation point: never shared
        self.finish(edge.master(text, folder) if include_body else None)

    @api(**GRANT_FILE)
    @public
    async def head(self, grant: str, name: str) -> None:
        await self.get(grant, name, include_body=False)


COURSE_SPEC_FILE = {
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
        if not self.services.catalogue.may_see(self.current_user, video):
            raise NotFound()
        name = f"{nearest_rung(video, int(height))}p/{file}"
        if not FILE.match(name):
            raise NotFound()
        edge = self.services.edge
        if edge is not None and edge.ladders_in_store:  # the bytes are in the bucket, not on this disk
            self.redirect(edge.url(ladder_folder(video), name))
            return
        await self.serve(video, name, include_body)

    @api(**COURSE_SPEC_FILE)
    @user_only
    async def head(self, video_id: str, height: str, file: str) -> None:
        await self.get(video_id, height, file, include_body=False)


def ladder_file(folder: Path, name: str) -> Path | None:
    """folder/name if every part below the folder is a real directory or file, never a link out.

    `name` already matched FILE (no '..', no absolute path), so only a symlink could lead elsewhere:
    lstat each part instead of resolving the whole path (two system calls, not a dozen).
    """
    path = folder
    parts = name.split("/")
    for index, part in enumerate(parts):
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return None
        wanted = stat.S_ISREG if index == len(parts) - 1 else stat.S_ISDIR
        if not wanted(mode):
            return None
    return path


def nearest_rung(video: dict[str, Any], height: int) -> int:
    """The rung asked for, or the largest below it (a course-spec front-end may ask for 480p)."""
    heights = sorted(r["height"] for r in video.get("renditions", []))
    if not heights:
        raise NotFound()
    below = [h for h in heights if h <= height]
    return below[-1] if below else heights[0]


class EdgePlaylistHandler(BaseHandler):
    """/api/edge/<token>/<expires>/videos/<id>/<ladder>/<height>p/index.m3u8: a variant playlist from
    the object store, its segments presigned for the window the URL names. The token (not a user)
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
            "height": "The rung.",
        },
    )
    @public
    async def get(self, token: str, expires: str, video_id: str, ladder: str, height: str) -> None:
        edge = self.services.edge
        if not isinstance(edge, S3Edge):
            raise NotFound()
        folder = f"videos/{video_id}/{ladder}"
        when = int(expires)
        if not edge.check(token, when, folder):
            raise Forbidden("The stream link is invalid or has expired.")
        name = f"{height}p/index.m3u8"
        text = (await self.services.storage.read_bytes(f"{folder}/{name}")).decode()
        self.set_header("Content-Type", CONTENT_TYPES[".m3u8"])
        if "#EXT-X-ENDLIST" in text:
            self.set_header("Cache-Control", f"public, max-age={max(0, when - int(time.time()))}")
        else:  # a ladder still being made: players reload it for the next segments
            self.set_header("Cache-Control", GROWING_PLAYLIST)
        self.finish(edge.variant(text, folder, name, when))


routes = [
    (r"/api/stream/([^/]+)/(.+)", GrantStreamHandler),
    (
        r"/api/edge/([A-Za-z0-9_-]+)/(\d{1,12})/videos/([0-9a-f]{24})/(hls-[A-Za-z0-9_-]+)/(\d{2,4})p/index\.m3u8",
        EdgePlaylistHandler,
    ),
    (r"/api/video/([^/]+)/(\d{2,4})p/([^/]+?)/?", CourseSpecHandler),
]
