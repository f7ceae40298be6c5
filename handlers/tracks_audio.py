"""A ready video's audio tracks (other languages): POST streams a file in and queues its encode (202),
DELETE takes one out of the manifests."""

from __future__ import annotations

import tornado.web

from handlers.base import APIError, BaseHandler, staff_only
from handlers.openapi import api
from handlers.replies import AudioTrackReply
from handlers.upload import MultipartUploadHandler
from services.audio_tracks import AudioTrackFields, TrackIngest

FIELDS = ("language", "label", "default")
TRUE = ("1", "true", "yes", "on")


@tornado.web.stream_request_body
class AudioTrackListHandler(MultipartUploadHandler):
    """POST: a file with audio, `language`, `label`, `default?` → 202 (staff)."""

    form_fields = FIELDS

    async def open_ingest(self, declared: int) -> TrackIngest:
        """Check the video (ready, CMAF) and the size; where the file goes."""
        return await self.services.audio_tracks.open_ingest(self.path_args[0], declared)

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
