"""What the API answers, as pydantic models: the document's response schemas (handlers/openapi.py).

Where a service hands out a typed document (a video, a job), the reply model shapes its JSON itself, in
this one place (`of`); elsewhere they describe the dicts the services return (models/*.to_api).
tests/test_openapi.py checks every JSON answer the suite receives against them, so a field that changes
shape fails a test.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from bson import ObjectId
from pydantic import BaseModel, Field, RootModel, WithJsonSchema

from core.clock import isoformat
from services import vocabulary

T = TypeVar("T")

# A JSON number written as it is stored: 0 stays 0 (pydantic's float would write 0.0).
Number = Annotated[int | float, WithJsonSchema({"type": "number"})]
Percent = Annotated[
    int | float, Field(ge=0, le=100), WithJsonSchema({"type": "number", "minimum": 0, "maximum": 100})
]

VideoStatus = Literal["pending", "processing", "ready", "failed"]
# A mail job's payload fields that carry codes: no reply shows them.
MAIL_BODIES = ("text", "html")


class Detail(BaseModel):
    """An error, or a short acknowledgement: one human sentence."""

    detail: str


class FieldErrors(RootModel[dict[str, list[str]]]):
    """Field errors with 400: each refused field and its sentences."""


class Success(BaseModel):
    success: str


class Status(BaseModel):
    status: Literal["ok"]


class TokenReply(BaseModel):
    token: str


class VerifiedReply(Success):
    token: str


class EmailReply(BaseModel):
    email: str


class SignupReply(BaseModel):
    email: str
    first_name: str
    last_name: str
    token: str


class User(BaseModel):
    id: str
    email: str
    first_name: str
    last_name: str
    is_staff: bool


class AdminUser(User):
    is_active: bool
    is_verified: bool
    created_at: str | None
    last_login: str | None


class Category(BaseModel):
    id: str
    name: str
    slug: str
    description: str
    created_at: str | None


class Rendition(BaseModel):
    height: int
    width: int
    bandwidth: int
    url: str


class AudioTrackReply(BaseModel):
    """An added audio track (another language); the source's own sound is not listed."""

    id: str
    language: str = Field(description="BCP 47.")
    label: str
    default: bool
    status: Literal["processing", "ready", "failed"]
    error: str | None = Field(None, description="Why it failed, as a sentence.")

    @classmethod
    def of(cls, track: vocabulary.AudioTrack) -> AudioTrackReply:
        status: Any = track.status
        return cls(
            id=track.id,
            language=track.language,
            label=track.label,
            default=track.default,
            status=status,
            error=track.error,
        )


class Subtitle(BaseModel):
    id: str
    language: str = Field(description="A BCP 47 language tag.")
    label: str
    default: bool
    url: str | None = Field(description="The whole WebVTT file, under the stream grant.")


class Chapter(BaseModel):
    start: Number = Field(description="Seconds from the start.")
    title: str


class Video(BaseModel):
    id: str
    title: str
    description: str
    category: str | None = Field(description="The category's id.")
    created_at: str | None
    status: VideoStatus
    transcode_progress: Percent
    error: str | None
    duration: Number | None
    width: int | None
    height: int | None
    playable: bool = Field(description="It can be watched (maybe while still being transcoded).")
    thumbnail_url: str | None = Field(description="Under a stream grant; null until ready.")
    hls_url: str | None = Field(description="The master playlist under a stream grant; null until ready.")
    dash_url: str | None = Field(
        description="The DASH manifest (the same CMAF segments as `hls_url`) under a stream grant; null "
        "until ready, and for a ladder made before CMAF (MPEG-TS: HLS only) until it is retranscoded."
    )
    storyboard_url: str | None = Field(description="WebVTT of preview sprites, under a stream grant.")
    renditions: list[Rendition]
    codecs: list[str] = Field(
        description="The video codecs its master and MPD list: `avc1` (H.264), and `av01` (AV1) once all "
        "of its AV1 rungs are whole; empty until a ladder is ready."
    )
    watch_position: Number = Field(description="The caller's saved position in seconds (0 when none).")
    audio_tracks: list[AudioTrackReply] = Field(
        default_factory=list, description="Added audio languages (the source's own sound is not listed)."
    )
    subtitles: list[Subtitle] = Field(
        description="Subtitle tracks (also `TYPE=SUBTITLES` renditions of the master and text "
        "AdaptationSets of the MPD)."
    )
    chapters: list[Chapter] = Field(description="Chapters, by start.")
    chapters_url: str | None = Field(description="The chapters as a WebVTT file, under the stream grant.")
    views: int = Field(description="Views counted from playback sessions (30 s or half the video).")

    @classmethod
    def of(cls, shown: vocabulary.VideoView) -> Video:
        """A video as one user sees it: stream URLs under their grant, and their saved position."""
        video, urls = shown.video, shown.urls
        return cls(
            id=str(video.id),
            title=video.title,
            description=video.description,
            category=str(video.category_id) if video.category_id else None,
            created_at=isoformat(video.created_at),
            status=video.status,
            transcode_progress=video.transcode_progress,
            error=video.error,
            duration=video.duration,
            width=video.width,
            height=video.height,
            playable=urls.hls_url is not None,
            thumbnail_url=urls.thumbnail_url,
            hls_url=urls.hls_url,
            dash_url=urls.dash_url,
            storyboard_url=urls.storyboard_url,
            renditions=[
                Rendition(height=r.height, width=r.width, bandwidth=r.bandwidth, url=url)
                for r, url in urls.renditions
            ],
            codecs=list(video.codecs),
            watch_position=shown.watch_position,
            audio_tracks=[AudioTrackReply.of(t) for t in video.audio_tracks],
            subtitles=[
                Subtitle(id=t.id, language=t.language, label=t.label, default=t.default, url=url)
                for t, url in zip(video.subtitles, subtitle_urls(video, urls), strict=True)
            ],
            chapters=[Chapter(start=c.start, title=c.title) for c in video.chapters],
            chapters_url=urls.chapters_url,
            views=video.views,
        )


def subtitle_urls(video: Any, urls: Any) -> list[str | None]:
    """Each track's URL under the grant (none while the video cannot be played)."""
    found = dict(urls.subtitles)
    return [found.get(track.id) for track in video.subtitles]


class Progress(BaseModel):
    position: float
    duration: float | None
    updated_at: str | None


class Page(BaseModel, Generic[T]):
    """DRF's limit/offset envelope."""

    count: int
    next: str | None
    previous: str | None
    results: list[T]


class Job(BaseModel):
    id: str
    type: str | None
    state: str | None
    payload: dict[str, Any]
    attempts: int
    max_attempts: int | None
    progress: float
    last_error: str | None
    owner: str | None
    lease_until: str | None
    queued_at: str | None
    run_after: str | None
    started_at: str | None
    finished_at: str | None

    @classmethod
    def of(cls, job: vocabulary.Job) -> Job:
        """A job as staff see it; never a mail's bodies (they carry codes)."""
        payload = {k: v for k, v in job.payload.items() if k not in MAIL_BODIES}
        return cls(
            id=job.id,
            type=job.type,
            state=job.state,
            payload={k: str(v) if isinstance(v, ObjectId) else v for k, v in payload.items()},
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            progress=job.progress,
            last_error=job.last_error,
            owner=job.owner,
            lease_until=isoformat(job.lease_until),
            queued_at=isoformat(job.queued_at),
            run_after=isoformat(job.run_after),
            started_at=isoformat(job.started_at),
            finished_at=isoformat(job.finished_at),
        )


class Mail(BaseModel):
    id: str
    to: str | None
    template: str | None
    subject: str | None
    state: str | None
    attempts: int
    last_error: str | None
    queued_at: str | None
    finished_at: str | None
    has_body: bool

    @classmethod
    def of(cls, job: vocabulary.Job) -> Mail:
        """A mail job as staff see it: to whom, which template, where it stands; never its bodies."""
        payload = job.payload
        return cls(
            id=job.id,
            to=payload.get("to"),
            template=payload.get("template"),
            subject=payload.get("subject"),
            state=job.state,
            attempts=job.attempts,
            last_error=job.last_error,
            queued_at=isoformat(job.queued_at),
            finished_at=isoformat(job.finished_at),
            has_body="text" in payload,
        )


# Named pages: a document's schema names are plain words.
class VideoPage(Page[Video]):
    """A page of videos."""


class JobPage(Page[Job]):
    """A page of jobs."""


class MailPage(Page[Mail]):
    """A page of mails."""


class AdminUserPage(Page[AdminUser]):
    """A page of users."""
