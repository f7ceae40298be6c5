"""A playback report: its events as players send them (validated, every number bounded), and how a
batch of them folds into one atomic update of its session's document (services/analytics.py)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from core.validation import Body
from models.playback import RETENTION_BUCKETS, Session
from models.videos import Video

MAX_EVENTS = 50
MAX_SEQ = 1_000_000
MAX_POSITION_S = 7 * 24 * 3600
MAX_PLAYED_S = 60  # seconds one heartbeat may add: players send one every few seconds
# A session's own id: what a player makes (a UUID, say), never an address.
SESSION_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
RENDITION_PATTERN = r"^(?:[0-9]{2,4}p|audio)$"
CODEC_PATTERN = r"^[A-Za-z0-9]{2,8}(?:\.[A-Za-z0-9]{1,8}){0,5}$"
CODE_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


def whole(value: Any) -> Any:
    """JSON Schema's integer: 3.0 is one too (a strict int field would refuse it)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# Integers from 0 (3.0 too), declared as such: the constraint first, so that the schema shows it.
Seq = Annotated[
    int, Field(ge=0, le=MAX_SEQ, description="The event's number in its session."), BeforeValidator(whole)
]
Millis = Annotated[int, Field(ge=0, le=600_000), BeforeValidator(whole)]
Position = Annotated[float, Field(ge=0, le=MAX_POSITION_S, allow_inf_nan=False, description="Seconds.")]
Rendition = Annotated[str, Field(pattern=RENDITION_PATTERN, description='The rung playing, e.g. "720p".')]
Codec = Annotated[str, Field(pattern=CODEC_PATTERN, description='e.g. "avc1.64001f" or "av01.0.05M.08".')]
Bitrate = Annotated[
    int,
    Field(ge=0, le=1_000_000_000, description="Bits per second of the rendition."),
    BeforeValidator(whole),
]


class StartEvent(Body):
    seq: Seq
    type: Literal["start"]
    startup_ms: Millis = Field(description="From play to the first frame.")


class HeartbeatEvent(Body):
    seq: Seq
    type: Literal["heartbeat"]
    position: Position
    rendition: Rendition | None = None
    codec: Codec | None = None
    bitrate: Bitrate | None = None
    played: float | None = Field(
        None,
        ge=0,
        le=MAX_PLAYED_S,
        allow_inf_nan=False,
        description="Seconds played since the session's previous event; absent: how far the position moved.",
    )


class RebufferEvent(Body):
    seq: Seq
    type: Literal["rebuffer"]
    ms: Millis = Field(description="How long playback stalled.")
    position: Position | None = None


class SwitchEvent(Body):
    seq: Seq
    type: Literal["switch"]
    rendition: Rendition | None = None
    codec: Codec | None = None
    bitrate: Bitrate | None = None


class ErrorEvent(Body):
    seq: Seq
    type: Literal["error"]
    code: str = Field(pattern=CODE_PATTERN, description="A short machine name of the error.")
    detail: str = Field("", max_length=500)


class EndEvent(Body):
    seq: Seq
    type: Literal["end"]
    position: Position | None = None


Event = Annotated[
    StartEvent | HeartbeatEvent | RebufferEvent | SwitchEvent | ErrorEvent | EndEvent,
    Field(discriminator="type"),
]


class PlaybackReport(Body):
    """A batch of a playback session's events."""

    session: str = Field(pattern=SESSION_PATTERN, description="The session's id, made by the player.")
    events: list[Event] = Field(min_length=1, max_length=MAX_EVENTS)


@dataclass
class Fold:
    """A batch folded into one update of its session."""

    change: dict[str, Any]
    played_s: float
    startup_ms: int | None
    rebuffers: list[tuple[str | None, int]]
    errors: list[str | None]


# What a session document may name, so that a client cannot grow it without end: the codec families
# players meet, the video's own renditions, and a few error codes per session; the rest is "other".
CODEC_FAMILIES = frozenset({"avc1", "avc3", "hvc1", "hev1", "av01", "vp09", "vp8", "mp4a", "opus", "flac"})
MAX_ERROR_CODES = 20
OTHER = "other"


def codec_family(codec: str) -> str:
    """avc1.64001f → avc1: the family names a field (no dots) and is what bytes are told apart by."""
    family = codec.split(".")[0].lower()
    return family if family in CODEC_FAMILIES else OTHER


def rendition_name(video: Video, rendition: str | None) -> str | None:
    """The rendition as the video has it ("720p", "audio"); another name is "other"."""
    if rendition is None or rendition == "audio":
        return rendition
    return rendition if any(rendition == f"{rung.height}p" for rung in video.renditions) else OTHER


def bucket_of(position: float, duration: float | None) -> int | None:
    """The retention bucket (of 20) a position falls in; None without a duration."""
    if not duration or duration <= 0:
        return None
    return min(RETENTION_BUCKETS - 1, int(position / duration * RETENTION_BUCKETS))


def bandwidth_of(video: Video, rendition: str | None) -> int:
    """The ladder's declared bits per second for a rendition ("720p"), 0 when unknown."""
    for rung in video.renditions:
        if rendition == f"{rung.height}p":
            return rung.bandwidth
    return 0


def fold(session: Session, events: Sequence[Any], video: Video, now: datetime) -> Fold | None:
    """The update that adds a batch's new events (seq above the session's last) to the session; None when
    every event was seen before (a replay)."""
    fresh = sorted({e.seq: e for e in events if e.seq > session.max_seq}.values(), key=lambda e: e.seq)
    if not fresh:
        return None
    duration = video.duration
    inc: dict[str, float] = defaultdict(float)
    buckets: set[int] = set()
    position, rendition = session.position, session.rendition
    codec: str = session.doc.get("codec") or "avc1"
    max_position = position
    startup: int | None = None
    result = Fold({}, 0.0, None, [], [])
    codes: set[str] = set(session.doc.get("error_codes") or ())
    sets: dict[str, Any] = {}
    for event in fresh:
        if isinstance(event, StartEvent):
            if "startup_ms" not in session.doc and startup is None:
                startup = sets["startup_ms"] = event.startup_ms
        elif isinstance(event, HeartbeatEvent):
            moved = event.position - position
            played = event.played if event.played is not None else min(max(moved, 0.0), MAX_PLAYED_S)
            position = min(event.position, duration) if duration else event.position
            rendition = rendition_name(video, event.rendition) or rendition
            codec = codec_family(event.codec) if event.codec else codec
            key = rendition or "unknown"
            # retention: every twentieth the seconds played since the last report ran through (they
            # end at the position reported), not just the one a heartbeat lands in
            start = max(0.0, position - played)
            first, last = bucket_of(start, duration), bucket_of(max(start, position - 0.001), duration)
            if first is not None and last is not None:
                buckets.update(range(first, last + 1))
            inc["watched_s"] += played
            inc[f"renditions.{key}.{codec}"] += played
            bits = event.bitrate if event.bitrate is not None else bandwidth_of(video, rendition)
            inc[f"bytes.{codec}"] += bits * played / 8
            result.played_s += played
        elif isinstance(event, RebufferEvent):
            inc["rebuffer_ms"] += event.ms
            inc["rebuffer_count"] += 1
            result.rebuffers.append((rendition, event.ms))
        elif isinstance(event, SwitchEvent):
            rendition = rendition_name(video, event.rendition) or rendition
            codec = codec_family(event.codec) if event.codec else codec
        elif isinstance(event, ErrorEvent):
            inc["errors"] += 1
            codes.add(event.code if event.code in codes or len(codes) < MAX_ERROR_CODES else OTHER)
            inc[f"error_codes.{event.code if event.code in codes else OTHER}"] += 1
            result.errors.append(rendition)
        elif isinstance(event, EndEvent):
            sets["ended"] = True
        if isinstance(event, HeartbeatEvent | RebufferEvent | EndEvent) and event.position is not None:
            if not isinstance(event, HeartbeatEvent):
                position = min(event.position, duration) if duration else event.position
            max_position = max(max_position, position)
    sets.update(max_seq=fresh[-1].seq, position=position, rendition=rendition, codec=codec, updated=now)
    change: dict[str, Any] = {"$set": sets, "$max": {"max_position": max_position}}
    if inc:
        change["$inc"] = dict(inc)
    if buckets:
        change["$addToSet"] = {"buckets": {"$each": sorted(buckets)}}
    result.change = change
    result.startup_ms = startup
    return result
