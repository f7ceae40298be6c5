"""Probing a media file: duration, size, rotation, frame rate, audio, read as structured data by PyAV in a
process of its own (transcode/probe_child.py) under the limits of `media.probe_*`."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import resource
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from transcode.ffmpeg import SOURCE_FORMATS, demuxer_name

MIB = 1024 * 1024
CHILD = Path(__file__).with_name("probe_child.py")
# The video packets whose times give the frame rate of a source that states no average rate.
RATE_PACKETS = 120


class SourceRefused(Exception):
    """The file is not a source we transcode; the message is a sentence for the user."""


class NotAVideo(SourceRefused):
    """The file has no video stream FFmpeg can read (or is in a format we do not open)."""


class OverLimit(SourceRefused):
    """The file claims more than a limit allows (length, picture size, frame rate), or reading it takes
    more memory or time than the probe may use; the message names the limit."""


@dataclass(frozen=True)
class SourceLimits:
    """What a source may claim, and what probing it may cost (config's media.* settings)."""

    max_duration_s: float = 4 * 3600
    max_pixels: int = 7680 * 4320
    max_fps: float = 240
    memory_mb: int = 1024
    timeout_s: float = 30.0

    @property
    def decoder_max_pixels(self) -> int:
        """The cap FFmpeg's decoders are given: a little above the limit, for the padding some decoders add
        to a picture's width, so that a source at the limit is refused by the sentence, not the decoder."""
        return self.max_pixels + self.max_pixels // 8


@dataclass(frozen=True)
class MediaInfo:
    """What the transcoder needs to know of a source. width/height are as displayed (rotation applied)."""

    duration: float
    width: int
    height: int
    rotation: int
    fps: float
    has_audio: bool
    video_codec: str
    still: bool = False  # one picture (a PNG or JPEG), which FFmpeg reads as a one-frame video
    video_kbps: int = 0  # the video stream's bitrate; 0 when unknown
    pix_fmt: str = ""
    profile: str = ""  # as FFmpeg names it: "High", "Main", "Constrained Baseline", "High 10"...
    level: int = 0  # H.264 level times ten (40 for 4.0); 0 when unknown
    audio_codec: str = ""  # the first audio stream's, as FFmpeg names them ("aac", "LC"); empty: unknown
    audio_profile: str = ""
    audio_channels: int = 0
    audio_rate: int = 0  # samples per second
    audio_kbps: int = 0
    container: str = ""  # the demuxer the probe found ("mov", "matroska"...), which the transcode uses
    rate: float = 0.0  # frames per second: the stated average, else measured on the first packets; 0: unknown
    audio_language: str = ""  # the first audio stream's language tag; empty: none (the ladder says "und")


def displayed(width: int, height: int, rotation: int) -> tuple[int, int]:
    """The size as shown: a quarter turn swaps width and height."""
    return (height, width) if rotation % 180 == 90 else (width, height)


# Picture codecs: a file of one of these that lasts (almost) no time is one picture (a one-frame GIF
# lasts its frame's delay, 0.1 s from FFmpeg, 0 from others).
IMAGE_CODECS = {"png", "apng", "mjpeg", "gif", "bmp", "webp", "tiff"}
STILL_UNDER_S = 0.5


def is_still_image(format_name: str, codec: str, duration: float, fps: float = 0.0) -> bool:
    """One picture, which FFmpeg reads as a one-frame video stream: an image format (png_pipe,
    jpeg_pipe, image2...), or a picture codec that lasts (almost) no time or one frame at its rate (a
    one-frame GIF lasts its delay: 0.1 s from FFmpeg 5, one frame's time from FFmpeg 9)."""
    image_format = any(name.endswith("_pipe") or name == "image2" for name in format_name.split(","))
    one_frame = fps > 0 and duration * fps < 1.5
    return image_format or (codec in IMAGE_CODECS and (duration < STILL_UNDER_S or one_frame))


class Stream(BaseModel):
    """One stream as the probe's child reports it (transcode/probe_child.py)."""

    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)

    index: int = Field(ge=0)
    type: str
    codec: str
    profile: str = ""
    level: int = Field(0, ge=0)
    bit_rate: int = Field(0, ge=0)
    duration: float | None = None
    attached_pic: bool = False
    width: int = Field(0, ge=0)
    height: int = Field(0, ge=0)
    pix_fmt: str = ""
    average_rate: float = Field(0.0, ge=0)
    base_rate: float = Field(0.0, ge=0)
    channels: int = Field(0, ge=0)
    sample_rate: int = Field(0, ge=0)
    language: str = Field("", max_length=35)  # the stream's language tag (ISO 639-2 in MP4/Matroska)


class Report(BaseModel):
    """What the probe's child prints for a file it could read."""

    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)

    format: str
    duration: float | None = None
    bit_rate: int = Field(0, ge=0)
    streams: list[Stream]
    rotation: int = 0
    packet_times: list[float] = Field(default_factory=list, max_length=RATE_PACKETS)


class Packets(BaseModel):
    """What the probe's child prints for a packet scan: the times of one stream's packets."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    times: list[list[float]]


class Refusal(BaseModel):
    """What the probe's child prints for a file it could not read."""

    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)

    refused: Literal["format", "memory", "unreadable"]
    detail: str = ""


def from_report(report: Report) -> MediaInfo:
    """MediaInfo from what the probe's child read of the file."""
    videos = [s for s in report.streams if s.type == "video" and not s.attached_pic]
    if not videos:
        raise NotAVideo("The file has no video stream.")
    video = videos[0]
    audio = next((s for s in report.streams if s.type == "audio"), None)
    rotation = report.rotation % 360
    width, height = displayed(video.width, video.height, rotation)
    duration = max(0.0, report.duration or video.duration or 0.0)
    fps = video.average_rate or video.base_rate
    return MediaInfo(
        duration=duration,
        width=width,
        height=height,
        rotation=rotation,
        fps=fps,
        has_audio=audio is not None,
        video_codec=video.codec,
        still=is_still_image(report.format, video.codec, duration, fps),
        video_kbps=video_kbps(report, video),
        pix_fmt=video.pix_fmt,
        profile=video.profile,
        level=video.level,
        **audio_fields(audio),
        container=demuxer_name(report.format),
        rate=video.average_rate or packet_rate(report.packet_times),
    )


def packet_rate(times: list[float]) -> float:
    """Frames per second over the first packets of the video stream (a Matroska file often states no
    average rate, and its base rate is then the time base: 1000); 0 when too few to tell."""
    times = sorted(times)
    span = times[-1] - times[0] if len(times) >= 2 else 0.0
    return (len(times) - 1) / span if span > 0 else 0.0


def audio_fields(audio: Stream | None) -> dict:
    """What decides whether the first audio stream can be copied as it is."""
    if audio is None:
        return {}
    return {
        "audio_codec": audio.codec,
        "audio_profile": audio.profile,
        "audio_channels": audio.channels,
        "audio_rate": audio.sample_rate,
        "audio_kbps": audio.bit_rate // 1000,
        "audio_language": language_tag(audio.language),
    }


def language_tag(value: str) -> str:
    """A stream's language tag as a BCP 47-shaped tag (MP4 and Matroska write ISO 639-2: `eng`, which
    players match too), or "" when there is none or it is not one ("und": undetermined)."""
    value = value.strip()
    return value if re.fullmatch(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,4}", value) and value != "und" else ""


def video_kbps(report: Report, video: Stream) -> int:
    """The video stream's bitrate: its own, else the container's less the audio streams'."""
    if video.bit_rate > 0:
        return video.bit_rate // 1000
    audio = sum(s.bit_rate for s in report.streams if s.type == "audio")
    return max(0, report.bit_rate - audio) // 1000


def limit_memory(megabytes: int) -> None:
    """In the child, before exec: no more address space than this (FFmpeg's allocations then fail)."""
    size = megabytes * MIB
    resource.setrlimit(resource.RLIMIT_AS, (size, size))


def child_command(mode: str, path: Path, container: str = "", *extra: str) -> list[str]:
    """The probe's child (transcode/probe_child.py) reading `path` as transcode.ffmpeg.input_args opens
    it for FFmpeg: the file protocol alone, the same allowed demuxers, the one the probe found if known.
    `-I`: the interpreter reads no PYTHON* variable, user site or working directory."""
    args = [sys.executable, "-I", str(CHILD), mode, str(path), "--formats", ",".join(SOURCE_FORMATS)]
    if demuxer_name(container):
        args += ["--format", demuxer_name(container)]
    return [*args, *extra]


async def run(args: list[str], limits: SourceLimits) -> tuple[int, str]:
    """Run the probe's child without blocking the IOLoop, within the memory limit; kill it if it outlives
    the timeout (OverLimit). Its exit code and what it printed."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        preexec_fn=lambda: limit_memory(limits.memory_mb),
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), limits.timeout_s)
    except TimeoutError:
        await end_child(proc)
        raise OverLimit(
            f"Reading the file took longer than the {limits.timeout_s:g} s allowed (media.probe_timeout_s)."
        ) from None
    except asyncio.CancelledError:  # the request or job that asked went away: no child left behind
        await asyncio.shield(end_child(proc))
        raise
    return proc.returncode or 0, out.decode(errors="replace")


async def end_child(proc: asyncio.subprocess.Process) -> None:
    """Kill the probe's child and reap it; one that has just exited on its own is simply reaped."""
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()


# What playlists and manifests start with (FFmpeg refuses them as "invalid data" when their demuxer is off
# the list, before naming it).
PLAYLIST_MARKS = (b"#EXTM3U", b"ffconcat", b"<MPD", b"<?xml")
NOT_A_VIDEO = "The file is not a video FFmpeg can read."
NOT_ALLOWED_FORMAT = (
    "The file is not in a format we accept: MP4, MOV, MKV, WebM, AVI, MPEG-TS, MPEG-PS, MXF, DV, WMV, "
    "FLV or Ogg; playlists, manifests and image sequences never are."
)


def out_of_memory(limits: SourceLimits, code: int = 0) -> OverLimit:
    why = f" (the probe stopped by {signal_name(-code)})" if code < 0 else ""
    return OverLimit(
        f"Reading the file needs more than the {limits.memory_mb} MiB of memory allowed "
        f"(media.probe_memory_mb){why}."
    )


def read_report(code: int, out: str, limits: SourceLimits) -> Report:
    """The child's report, validated; the refusal it stands for otherwise: a format off the list, the
    memory limit reached (an allocation failed, the child was killed or could not even start), or no
    readable media at all."""
    if code < 0:
        raise out_of_memory(limits, code)
    try:
        return Report.model_validate_json(out)
    except ValidationError:
        pass
    try:
        refused = Refusal.model_validate_json(out).refused
    except ValidationError:
        # Nothing valid printed: the interpreter died before it could answer (it exits 1 when the
        # limit leaves it no room to start); a clean exit that says nothing is an unreadable file.
        raise (out_of_memory(limits) if code != 0 else NotAVideo(NOT_A_VIDEO)) from None
    if refused == "format":
        raise NotAVideo(NOT_ALLOWED_FORMAT)
    if refused == "memory":
        raise out_of_memory(limits)
    raise NotAVideo(NOT_A_VIDEO)


def names_other_files(path: Path) -> bool:
    """The file looks like a playlist or a manifest (text naming other files), whatever its name."""
    try:
        with path.open("rb") as file:
            head = file.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError:
        return False
    return head.startswith(PLAYLIST_MARKS)


def signal_name(number: int) -> str:
    with contextlib.suppress(ValueError):
        return signal.Signals(number).name
    return f"signal {number}"


def too_many_pixels(width: int, height: int, limits: SourceLimits) -> OverLimit:
    return OverLimit(
        f"The picture is {width}x{height} ({width * height / 1e6:.1f} megapixels), more than the "
        f"{limits.max_pixels / 1e6:.1f} megapixels allowed (media.max_pixels)."
    )


def clock(seconds: float) -> str:
    """3723.5 → '1:02:03'."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def named(problem: SourceRefused, path: Path) -> SourceRefused:
    """A refusal that names why: a playlist or manifest is off the format list, whichever FFmpeg said
    only that it could not read it."""
    if str(problem) == NOT_A_VIDEO and names_other_files(path):
        return NotAVideo(NOT_ALLOWED_FORMAT)
    return problem


def check_limits(info: MediaInfo, limits: SourceLimits) -> None:
    """OverLimit, with a sentence naming the limit, when the source claims more than it may."""
    if info.width * info.height > limits.max_pixels:
        raise too_many_pixels(info.width, info.height, limits)
    if info.duration > limits.max_duration_s:
        raise OverLimit(
            f"The video lasts {clock(info.duration)}, longer than the {clock(limits.max_duration_s)} "
            "allowed (media.max_duration_s)."
        )
    if info.rate > limits.max_fps:
        raise OverLimit(
            f"The video runs at {info.rate:.0f} frames per second, more than the {limits.max_fps:g} "
            "allowed (media.max_fps)."
        )


async def probe(path: Path, *, limits: SourceLimits | None = None) -> MediaInfo:
    """What the file holds, read with PyAV by a process of its own (transcode/probe_child.py) within the
    memory and time limits and opened as every source is (see transcode.ffmpeg.input_args); NotAVideo
    when it has no readable video stream, OverLimit when it claims more than the limits allow."""
    limits = limits or SourceLimits()
    code, out = await run(
        child_command("info", path, "", "--max-pixels", str(limits.decoder_max_pixels)), limits
    )
    try:
        info = from_report(read_report(code, out, limits))
    except SourceRefused as problem:
        raise named(problem, path) from None
    if info.width <= 0 or info.height <= 0:
        raise NotAVideo("The video stream has no picture size.")
    check_limits(info, limits)
    return info


def packet_times(
    path: Path,
    streams: list[str],
    container: str = "",
    *,
    count: int = 0,
    keys: bool = False,
    timeout_s: float = 30.0,
) -> list[list[float]] | None:
    """The times of the packets of each stream (`v:0`, `a:0`; the first `count` of each; only keyframes
    with `keys`), read in one pass by the probe's child without decoding, within the probe's default memory
    limit; None when they cannot be read."""
    limits = SourceLimits()
    args = child_command("packets", path, container, "--count", str(count), *(["--keys"] if keys else []))
    args += ["--max-pixels", str(limits.decoder_max_pixels)]  # find_stream_info decodes a few frames
    try:
        done = subprocess.run(
            [*args, *(f"--stream={stream}" for stream in streams)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            preexec_fn=lambda: limit_memory(limits.memory_mb),
        )
        times = Packets.model_validate_json(done.stdout).times
    except (OSError, subprocess.SubprocessError, ValidationError):
        return None
    return times if len(times) == len(streams) else None


def stream_start(
    path: Path, stream: str, packets: int = 8, timeout_s: float = 30.0, container: str = ""
) -> list[float] | None:
    """The presentation times of the first packets of one stream (`v:0`, `a:0`), sorted; None when they
    cannot be read."""
    times = packet_times(path, [stream], container, count=packets, timeout_s=timeout_s)
    return sorted(times[0]) if times and times[0] else None


def audio_start_gap(path: Path, container: str = "") -> float | None:
    """How far the audio starts from the picture once the packets before the picture's start (the AAC
    encoder's priming, which an MP4 hides with an edit list and MPEG-TS cannot) are dropped, in seconds;
    None when unknown. One pass reads the first packets of both streams."""
    times = packet_times(path, ["v:0", "a:0"], container, count=8)
    if not times or not times[0] or not times[1]:
        return None
    video, audio = sorted(times[0]), sorted(times[1])
    kept = [t for t in audio if t >= video[0] - 0.0005]
    return abs(kept[0] - video[0]) if kept else None


def max_keyframe_gap(
    path: Path, duration: float, timeout_s: float = 60.0, container: str = ""
) -> float | None:
    """The longest stretch between two keyframes of the video (the last one running to the end), read
    from the packets without decoding; None when it cannot be read."""
    found = packet_times(path, ["v:0"], container, keys=True, timeout_s=timeout_s)
    if not found or not found[0]:
        return None
    times = sorted(found[0])
    points = [*times, max(duration, times[-1])]
    return max(b - a for a, b in itertools.pairwise(points)) if len(points) > 1 else 0.0
