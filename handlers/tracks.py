"""A video's tracks under /api/videos/<id>/: subtitles (upload, list, delete) and chapters."""

from __future__ import annotations

import math
from typing import Annotated, Any

import tornado.web
from pydantic import AfterValidator, Field, RootModel, ValidationError
from streaming_form_data import StreamingFormDataParser
from streaming_form_data.parser import ParseFailedException
from streaming_form_data.targets import ValueTarget
from streaming_form_data.validators import MaxSizeValidator
from streaming_form_data.validators import ValidationError as FieldTooLong

from core.validation import Body, Declares, message_for
from handlers.base import APIError, BaseHandler, staff_only, user_only
from handlers.openapi import api
from handlers.replies import Subtitle, Video
from handlers.streaming import StreamedBodyHandler
from services.tracks import LANGUAGE_PATTERN, MAX_LANGUAGE, SubtitleView, language_tag

KIB = 1024
FORM_OVERHEAD = 16 * KIB  # the multipart framing and the small fields around the file
MAX_TITLE = 200
FIELDS = ("language", "label", "default")
FIELD_MAX_BYTES = 4 * KIB
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


class SubtitleFields(Body):
    """The form fields beside `file` (an SRT or WebVTT file)."""

    language: Annotated[
        str,
        AfterValidator(language_tag),
        Declares(pattern=LANGUAGE_PATTERN, maxLength=MAX_LANGUAGE),
        Field(description="A BCP 47 language tag: en, de-CH, pt-BR."),
    ]
    label: str = Field("", max_length=100, description="What a captions menu shows; default: the tag.")
    default: bool = Field(False, description="Players pick this track first (`true`/`false`).")


def not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("A chapter title may not be blank.")
    return value


class ChapterBody(Body):
    start: float = Field(ge=0, allow_inf_nan=False, description="Seconds from the start.")
    title: Annotated[
        str, Field(min_length=1, max_length=MAX_TITLE), AfterValidator(not_blank), Declares(pattern=r"\S")
    ]


class ChapterList(RootModel[list[ChapterBody]]):
    """A JSON array of `{start, title}`, by increasing start."""


def subtitle_json(view: SubtitleView) -> Subtitle:
    return Subtitle(id=view.id, language=view.language, label=view.label, default=view.default, url=view.url)


@tornado.web.stream_request_body
class SubtitlesHandler(StreamedBodyHandler):
    """GET lists a video's subtitle tracks; POST (staff) uploads one, held in memory up to the limit."""

    body: bytearray | None = None

    @property
    def limit_bytes(self) -> int:
        return int(self.config.media.max_subtitle_kb) * KIB

    async def prepare(self) -> None:
        if self.request.method == "POST":
            # as for video uploads: the body limit raised first, so a refusal is a JSON answer
            self.allow_body(self.limit_bytes + FORM_OVERHEAD + KIB * KIB)
        await super().prepare()
        if self.request.method != "POST":
            return
        media_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media_type != "multipart/form-data":
            raise APIError(
                415, f'Unsupported media type "{media_type}" in request; send multipart/form-data.'
            )
        length = self.request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.limit_bytes + FORM_OVERHEAD:
            raise APIError(413, self.too_large_detail())
        self.body = bytearray()
        self.watch_body()

    def too_large_detail(self) -> str:
        return f"A subtitle file may be at most {self.config.media.max_subtitle_kb} KiB."

    async def data_received(self, chunk: bytes) -> None:
        self.body_arrived(len(chunk))
        if self.body is None or self._finished:
            return
        self.body += chunk
        if len(self.body) > self.limit_bytes + FORM_OVERHEAD:
            self.body = None
            self.send_error(413, exc_info=(APIError, APIError(413, self.too_large_detail()), None))

    @api(
        "A video's subtitle tracks",
        responses={200: list[Subtitle]},
    )
    @user_only
    async def get(self, video_id: str) -> None:
        views = await self.services.tracks.list_subtitles(self.user, video_id)
        self.send_json([subtitle_json(view) for view in views])

    @api(
        "Add a subtitle track (SRT or WebVTT); the same language again replaces it",
        description="The file is checked (a broken one answers 400 naming its line), cleaned of markup "
        "WebVTT does not allow, cut at the video's end, and served as a `TYPE=SUBTITLES` rendition "
        "(segmented WebVTT) and an MPD text AdaptationSet. Nothing is encoded again. 409 until the "
        "video is ready, and for a ladder made before CMAF.",
        body=SubtitleFields,
        body_media_type="multipart/form-data",
        files=["file"],
        responses={201: Subtitle},
        errors=[409, 413],
    )
    @staff_only
    async def post(self, video_id: str) -> None:
        body, self.body = bytes(self.body or b""), None
        arguments, data = self.form(body)
        if data is None:
            raise APIError(400, fields={"file": ["No file was submitted."]})
        if len(data) > self.limit_bytes:
            raise APIError(413, self.too_large_detail())
        fields = self.validate(SubtitleFields, self.form_fields(arguments))
        view = await self.services.tracks.add_subtitles(
            self.user, video_id, data, fields.language, fields.label, fields.default
        )
        self.send_json(subtitle_json(view), status=201)

    def form(self, body: bytes) -> tuple[dict[str, list[bytes]], bytes | None]:
        """The form's text fields and its file (None when none was sent), from the whole body."""
        try:
            parser = StreamingFormDataParser(headers=dict(self.request.headers))
        except ParseFailedException as err:
            raise APIError(400, "Multipart form data without a boundary.") from err
        file = ValueTarget()
        parser.register("file", file)
        fields = {name: ValueTarget(validator=MaxSizeValidator(FIELD_MAX_BYTES)) for name in FIELDS}
        for name, target in fields.items():
            parser.register(name, target)
        try:
            parser.data_received(body)
        except FieldTooLong as err:
            raise APIError(400, "A form field is too long.") from err
        except ParseFailedException as err:
            raise APIError(400, "The multipart form data is malformed.") from err
        found = {name: [target.value] for name, target in fields.items() if target._started}
        return found, file.value if file._started else None

    @staticmethod
    def form_fields(arguments: dict[str, list[bytes]]) -> dict[str, Any]:
        """The text fields as the model takes them: UTF-8 strings, `default` a boolean."""
        found: dict[str, Any] = {}
        errors: dict[str, list[str]] = {}
        for name in FIELDS:
            if name not in arguments:
                continue
            try:
                found[name] = arguments[name][-1].decode("utf-8")
            except UnicodeDecodeError:
                errors[name] = ["Not UTF-8 text."]
        if "default" in found:
            value = found["default"].strip().lower()
            if value not in TRUE + FALSE:
                errors["default"] = ["Must be true or false."]
            found["default"] = value in TRUE
        if errors:
            raise APIError(400, fields=errors)
        return found


class SubtitleHandler(BaseHandler):
    """DELETE one subtitle track (staff)."""

    @api("Remove a subtitle track (from the master and the MPD too)", responses={204: None})
    @staff_only
    async def delete(self, video_id: str, track_id: str) -> None:
        await self.services.tracks.delete_subtitles(video_id, track_id)
        self.set_status(204)
        self.finish()


class ChaptersHandler(BaseHandler):
    """PUT a video's chapters (staff)."""

    @api(
        "Set a video's chapters: a JSON array of {start, title}, by increasing start",
        description="Starts are seconds, unique, increasing and before the video's end; titles are "
        "not blank. `[]` removes them. Served in the video as `chapters` and as the WebVTT file "
        "`chapters_url`.",
        body=ChapterList,
        responses={200: Video},
        errors=[409],
    )
    @staff_only
    async def put(self, video_id: str) -> None:
        data = self.json_body()
        if not isinstance(data, list):
            raise APIError(400, "Expected a JSON array of {start, title}.")
        limit = int(self.config.media.max_chapters)
        if len(data) > limit:
            raise APIError(400, fields={"chapters": [f"At most {limit} chapters."]})
        try:
            chapters = ChapterList.model_validate(data).root
        except ValidationError as err:
            messages = []
            for error in err.errors()[:10]:
                where = ".".join(str(part) for part in error["loc"])
                messages.append(f"Chapter {where}: {message_for(error)}")
            raise APIError(400, fields={"chapters": messages}) from err
        if any(not math.isfinite(c.start) for c in chapters):
            raise APIError(400, fields={"chapters": ["A start is a finite number of seconds."]})
        await self.services.tracks.set_chapters(video_id, [(c.start, c.title) for c in chapters])
        self.send_json(Video.of(await self.services.catalogue.video_for(self.user, video_id)))


routes = [
    (r"/api/videos/([^/]+)/subtitles/?", SubtitlesHandler),
    (r"/api/videos/([^/]+)/subtitles/([^/]+)/?", SubtitleHandler),
    (r"/api/videos/([^/]+)/chapters/?", ChaptersHandler),
]
