"""A ready video's audio tracks (other languages): POST streams a file in and queues its encode (202),
DELETE takes one out of the manifests."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import tornado.web

from handlers.base import APIError, BaseHandler, staff_only
from handlers.openapi import api
from handlers.replies import AudioTrackReply
from handlers.streaming import StreamedBodyHandler
from handlers.upload import UploadReceiver
from services.audio_tracks import FORM_OVERHEAD, AudioTrackFields, TrackIngest

MIB = 1024 * 1024
FIELDS = ("language", "label", "default")
TRUE = ("1", "true", "yes", "on")


@tornado.web.stream_request_body
class AudioTrackListHandler(StreamedBodyHandler):
    """POST: a file with audio, `language`, `label`, `default?` → 202 (staff)."""

    upload: UploadReceiver | None = None
    ingest: TrackIngest | None = None
    discards: ClassVar[set[asyncio.Task[None]]] = set()

    async def prepare(self) -> None:
        if self.request.method == "POST":
            length = self.request.headers.get("Content-Length", "")
            declared = int(length) if length.isdigit() else 0
            limit = self.config.media.max_upload_mb * MIB + FORM_OVERHEAD
            self.allow_body(max(declared, limit + MIB))
        await super().prepare()
        if self.request.method == "POST":
            self.upload = await self.begin_upload(self.path_args[0])
            self.watch_body()

    async def begin_upload(self, video_id: str) -> UploadReceiver:
        """Check the type, the video (ready, CMAF) and the size; where the file goes."""
        media_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media_type != "multipart/form-data":
            raise APIError(
                415, f'Unsupported media type "{media_type}" in request; send multipart/form-data.'
            )
        length = self.request.headers.get("Content-Length")
        declared = int(length) if length and length.isdigit() else 0
        self.ingest = await self.services.audio_tracks.open_ingest(video_id, declared)
        self.allow_body(max(declared, self.ingest.limit_bytes + MIB))
        return UploadReceiver(dict(self.request.headers), self.ingest.path, self.ingest.limit_bytes, FIELDS)

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
        upload, self.upload = self.upload, None
        ingest, self.ingest = self.ingest, None
        if upload is not None:
            upload.close()
        if ingest is not None:
            await ingest.discard()

    def on_connection_close(self) -> None:
        if self.upload is not None:
            task = asyncio.get_running_loop().create_task(self.discard())
            self.discards.add(task)
            task.add_done_callback(self.discards.discard)
        super().on_connection_close()

    @api(
        "Add an audio track (another language) to a ready video; it is encoded once, the picture untouched",
        body=AudioTrackFields,
        body_media_type="multipart/form-data",
        files=["file"],
        responses={202: AudioTrackReply},
        errors=[409, 413],
        path={"video_id": "The video's id."},
    )
    @staff_only
    async def post(self, video_id: str) -> None:
        upload, ingest = self.upload, self.ingest
        assert upload is not None and ingest is not None
        try:
            if not upload.has_file:
                raise APIError(400, fields={"file": ["No file was submitted."]})
            sent = {name: upload.value(name) for name in FIELDS}
            data: dict[str, object] = {k: v for k, v in sent.items() if v is not None and k != "default"}
            if sent["default"] is not None:
                data["default"] = sent["default"].strip().lower() in TRUE
            fields = self.validate(AudioTrackFields, data)
        except BaseException:
            await self.discard()
            raise
        self.upload = self.ingest = None
        upload.close()
        track = await self.services.audio_tracks.add(ingest, fields)
        self.send_json(AudioTrackReply.of(track), status=202)


class AudioTrackHandler(BaseHandler):
    @api(
        "Remove an added audio track (the source's own sound stays)",
        responses={204: None},
        path={"video_id": "The video's id.", "track_id": "The audio track's id."},
    )
    @staff_only
    async def delete(self, video_id: str, track_id: str) -> None:
        await self.services.audio_tracks.remove(video_id, track_id)
        self.set_status(204)
        self.finish()


routes = [
    (r"/api/videos/([^/]+)/audio/?", AudioTrackListHandler),
    (r"/api/videos/([^/]+)/audio/([^/]+)/?", AudioTrackHandler),
]
