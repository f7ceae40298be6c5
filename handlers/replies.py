"""What the API answers, as pydantic models: the document's response schemas (handlers/openapi.py).

Where a service hands out a typed document (a job), the reply model shapes its JSON itself (`of`);
elsewhere they describe the dicts the services return (models/*.to_api). tests/test_openapi.py checks
every JSON answer the suite receives against them, so a field that changes shape fails a test.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from bson import ObjectId
from pydantic import BaseModel, Field, RootModel

from core.clock import isoformat
from services import vocabulary

T = TypeVar("T")

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


class Video(BaseModel):
    id: str
    title: str
    description: str
    category: str | None = Field(description="The category's id.")
    created_at: str | None
    status: VideoStatus
    transcode_progress: float = Field(ge=0, le=100)
    error: str | None
    duration: float | None
    width: int | None
    height: int | None
    playable: bool = Field(description="It can be watched (maybe while still being transcoded).")
    thumbnail_url: str | None = Field(description="Under a stream grant; null until ready.")
    hls_url: str | None = Field(description="The master playlist under a stream grant; null until ready.")
    storyboard_url: str | None = Field(description="WebVTT of preview sprites, under a stream grant.")
    renditions: list[Rendition]
    watch_position: float = Field(description="The caller's saved position in seconds (0 when none).")


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
