"""Probing a media file: duration, size, rotation, frame rate, audio. ffprobe when there, else ffmpeg."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import resource
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from transcode.ffmpeg import demuxer_name, ffmpeg_binary, ffprobe_binary, input_args

MIB = 1024 * 1024
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


def parse_rate(value: str | None) -> float:
    """'30000/1001' → 29.97."""
    if not value:
        return 0.0
    num, _, den = value.partition("/")
    try:
        return float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return 0.0


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


def from_ffprobe(data: dict) -> MediaInfo:
    """MediaInfo from `ffprobe -print_format json -show_format -show_streams`."""
    streams = data.get("streams") or []
    videos = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    if not videos:
        raise NotAVideo("The file has no video stream.")
    video = videos[0]
    rotation = 0
    for side in video.get("side_data_list") or []:
        if "rotation" in side:
            rotation = round(float(side["rotation"]))
    if not rotation and "rotate" in (video.get("tags") or {}):
        rotation = int(video["tags"]["rotate"])
    rotation %= 360
    width, height = displayed(int(video.get("width") or 0), int(video.get("height") or 0), rotation)
    duration = float((data.get("format") or {}).get("duration") or video.get("duration") or 0)
    return MediaInfo(
        duration=duration,
        width=width,
        height=height,
        rotation=rotation,
        fps=parse_rate(video.get("avg_frame_rate")) or parse_rate(video.get("r_frame_rate")),
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
        video_codec=video.get("codec_name", ""),
        still=is_still_image(
            (data.get("format") or {}).get("format_name", ""),
            video.get("codec_name", ""),
            duration,
            parse_rate(video.get("avg_frame_rate")) or parse_rate(video.get("r_frame_rate")),
        ),
        video_kbps=video_kbps(data, video, streams),
        pix_fmt=video.get("pix_fmt", ""),
        profile=video.get("profile", ""),
        level=int(video.get("level") or 0) if str(video.get("level") or "0").lstrip("-").isdigit() else 0,
        **audio_fields(next((s for s in streams if s.get("codec_type") == "audio"), None)),
        container=demuxer_name((data.get("format") or {}).get("format_name", "")),
        rate=parse_rate(video.get("avg_frame_rate")) or packet_rate(data.get("packets"), video.get("index")),
    )


def packet_rate(packets: list[dict] | None, index: int | None) -> float:
    """Frames per second over the first packets of the video stream (a Matroska file often states no
    average rate, and its r_frame_rate is then the time base: 1000); 0 when too few to tell."""
    times = sorted(
        float(p["pts_time"])
        for p in packets or []
        if p.get("stream_index") == index and p.get("pts_time") not in (None, "", "N/A")
    )
    span = times[-1] - times[0] if len(times) >= 2 else 0.0
    return (len(times) - 1) / span if span > 0 else 0.0


def audio_fields(audio: dict | None) -> dict:
    """What decides whether the first audio stream can be copied as it is."""
    if audio is None:
        return {}
    return {
        "audio_codec": audio.get("codec_name", ""),
        "audio_profile": audio.get("profile", ""),
        "audio_channels": int(audio.get("channels") or 0),
        "audio_rate": int(audio.get("sample_rate") or 0),
        "audio_kbps": int(audio.get("bit_rate") or 0) // 1000,
        "audio_language": language_tag((audio.get("tags") or {}).get("language", "")),
    }


def language_tag(value: str) -> str:
    """A stream's language tag as a BCP 47-shaped tag (MP4 and Matroska write ISO 639-2: `eng`, which
    players match too), or "" when there is none or it is not one ("und": undetermined)."""
    value = str(value).strip()
    return value if re.fullmatch(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,4}", value) and value != "und" else ""


def video_kbps(data: dict, video: dict, streams: list[dict]) -> int:
    """The video stream's bitrate: its own, else the container's less the audio streams'."""
    own = int(video.get("bit_rate") or 0)
    if own > 0:
        return own // 1000
    total = int((data.get("format") or {}).get("bit_rate") or 0)
    audio = sum(int(s.get("bit_rate") or 0) for s in streams if s.get("codec_type") == "audio")
    return max(0, total - audio) // 1000


VIDEO_LINE = re.compile(r"Stream #\d+:\d+.*?: Video: (\w+).*")
SIZE = re.compile(r"\b(\d{2,5})x(\d{2,5})\b")
FPS = re.compile(r"([\d.]+) fps")
KBPS = re.compile(r"(\d+) kb/s")
PIX_FMT = re.compile(r"Video: \w+(?: \(([^)]*)\))?.*?, (\w+)(?:\(|,)")
DURATION = re.compile(r"Duration: (\d+):(\d{2}):(\d{2}(?:\.\d+)?)")
# "displaymatrix: rotation of -90.00 degrees" (FFmpeg 5), "Display Matrix: rotation of 90.00 degrees" (7+)
INPUT_FORMAT = re.compile(r"^Input #0, ([\w,]+), from", re.MULTILINE)
ROTATION = re.compile(r"(?:display ?matrix: rotation of|rotate\s*:)\s*(-?[\d.]+)", re.IGNORECASE)


def from_ffmpeg(stderr: str) -> MediaInfo:
    """MediaInfo from what `ffmpeg -i FILE` prints (for when only ffmpeg is installed)."""
    lines = stderr.splitlines()
    container = INPUT_FORMAT.search(stderr)
    found = next(
        (
            (i, video)
            for i, line in enumerate(lines)
            if (video := VIDEO_LINE.search(line)) and "attached pic" not in line
        ),
        None,
    )
    if found is None:
        raise NotAVideo("The file has no video stream.")
    video_at, video = found
    line = lines[video_at]
    codec = video.group(1)
    size = SIZE.search(line.split("Video:", 1)[1])
    fps = FPS.search(line)
    pix = PIX_FMT.search(line)
    rotation = 0
    for follower in lines[video_at + 1 : video_at + 12]:
        if "Stream #" in follower:
            break
        match = ROTATION.search(follower)
        if match:
            rotation = round(float(match.group(1)))
    rotation %= 360
    width, height = displayed(int(size.group(1)), int(size.group(2)), rotation) if size else (0, 0)
    duration = DURATION.search(stderr)
    seconds = (
        int(duration.group(1)) * 3600 + int(duration.group(2)) * 60 + float(duration.group(3))
        if duration
        else 0.0
    )
    return MediaInfo(
        duration=seconds,
        width=width,
        height=height,
        rotation=rotation,
        fps=float(fps.group(1)) if fps else 0.0,
        has_audio=re.search(r"Stream #\d+:\d+.*?: Audio:", stderr) is not None,
        video_codec=codec,
        still=is_still_image(
            container.group(1) if container else "", codec, seconds, float(fps.group(1)) if fps else 0.0
        ),
        video_kbps=int(kbps.group(1)) if (kbps := KBPS.search(line)) else 0,
        pix_fmt=pix.group(2) if pix else "",
        profile=(pix.group(1) or "") if pix else "",
        container=demuxer_name(container.group(1)) if container else "",
        rate=float(fps.group(1)) if fps else 0.0,
    )


def limit_memory(megabytes: int) -> None:
    """In the child, before exec: no more address space than this (FFmpeg's allocations then fail)."""
    size = megabytes * MIB
    resource.setrlimit(resource.RLIMIT_AS, (size, size))


async def run(args: list[str], limits: SourceLimits) -> tuple[int, str, str]:
    """Run a probe without blocking the IOLoop, within the memory limit; kill it if it outlives the
    timeout (OverLimit)."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=lambda: limit_memory(limits.memory_mb),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limits.timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise OverLimit(
            f"Reading the file took longer than the {limits.timeout_s:g} s allowed (media.probe_timeout_s)."
        ) from None
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


NOT_ALLOWED = "Format not on whitelist"
# What playlists and manifests start with (FFmpeg 9 no longer names the format it refused; 5.1 did).
PLAYLIST_MARKS = (b"#EXTM3U", b"ffconcat", b"<MPD", b"<?xml")
TOO_MANY_PIXELS = re.compile(r"Picture size (\d+)x(\d+) exceeds specified max pixel count")
# What FFmpeg says when an allocation fails (within the address space we gave it), or the loader can't map
# its libraries.
OUT_OF_MEMORY = ("Cannot allocate memory", "get_buffer() failed", "failed to map segment", "bad_alloc")
NOT_A_VIDEO = "The file is not a video FFmpeg can read."
NOT_ALLOWED_FORMAT = (
    "The file is not in a format we accept: MP4, MOV, MKV, WebM, AVI, MPEG-TS, MPEG-PS, MXF, DV, WMV, "
    "FLV or Ogg; playlists, manifests and image sequences never are."
)


def refusal(code: int, stderr: str, limits: SourceLimits) -> SourceRefused | None:
    """Why FFmpeg's answer refuses the file, if it does: a format off the list, a picture over the limit,
    the memory limit reached, or no readable media at all."""
    if NOT_ALLOWED in stderr:
        return NotAVideo(NOT_ALLOWED_FORMAT)
    oversize = TOO_MANY_PIXELS.search(stderr)
    if oversize:
        return too_many_pixels(int(oversize.group(1)), int(oversize.group(2)), limits)
    if any(marker in stderr for marker in OUT_OF_MEMORY) or code < 0:
        why = f" (FFmpeg stopped by {signal_name(-code)})" if code < 0 else ""
        return OverLimit(
            f"Reading the file needs more than the {limits.memory_mb} MiB of memory allowed "
            f"(media.probe_memory_mb){why}."
        )
    return NotAVideo(NOT_A_VIDEO) if code != 0 else None


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


async def probe(path: Path, *, use_ffprobe: bool = True, limits: SourceLimits | None = None) -> MediaInfo:
    """What the file holds, opened as every source is (see transcode.ffmpeg.input_args) by a process of its
    own within the memory and time limits; NotAVideo when it has no readable video stream, OverLimit when
    it claims more than the limits allow."""
    limits = limits or SourceLimits()
    ffprobe = ffprobe_binary() if use_ffprobe else None
    source = input_args(str(path), max_pixels=limits.decoder_max_pixels)
    if ffprobe:
        code, out, err = await run(
            [
                *[ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams"],
                *["-show_entries", "packet=stream_index,pts_time", "-read_intervals", f"%+#{RATE_PACKETS}"],
                *source,
            ],
            limits,
        )
        problem = refusal(code, err, limits)
        if problem is not None:
            raise named(problem, path)
        info = from_ffprobe(json.loads(out or "{}"))
    else:
        code, _, err = await run([ffmpeg_binary(), "-hide_banner", "-nostdin", *source], limits)
        # Without an output ffmpeg always exits 1 ("At least one output file must be specified").
        problem = refusal(code if code < 0 else 0, err, limits)
        if problem is not None:
            raise named(problem, path)
        if "Invalid data found" in err or "Input #0" not in err:
            raise named(NotAVideo(NOT_A_VIDEO), path)
        info = from_ffmpeg(err)
    if info.width <= 0 or info.height <= 0:
        raise NotAVideo("The video stream has no picture size.")
    check_limits(info, limits)
    return info


def stream_start(
    path: Path, stream: str, packets: int = 8, timeout_s: float = 30.0, container: str = ""
) -> list[float] | None:
    """The presentation times of the first packets of one stream (`v:0`, `a:0`), sorted; None when they
    cannot be read."""
    ffprobe = ffprobe_binary()
    if not ffprobe:
        return None
    args = [ffprobe, "-v", "error", "-select_streams", stream, "-read_intervals", f"%+#{packets}"]
    args += ["-show_entries", "packet=pts_time", "-of", "csv=p=0", *input_args(str(path), container)]
    try:
        done = subprocess.run(args, capture_output=True, timeout=timeout_s, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    times = []
    for line in done.stdout.decode(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            times.append(float(line.strip().rstrip(",")))
    return sorted(times) or None


def audio_start_gap(path: Path, container: str = "") -> float | None:
    """How far the audio starts from the picture once the packets before the picture's start (the AAC
    encoder's priming, which an MP4 hides with an edit list and MPEG-TS cannot) are dropped, in seconds;
    None when unknown."""
    video = stream_start(path, "v:0", container=container)
    audio = stream_start(path, "a:0", container=container)
    if not video or not audio:
        return None
    kept = [t for t in audio if t >= video[0] - 0.0005]
    return abs(kept[0] - video[0]) if kept else None


def max_keyframe_gap(
    path: Path, duration: float, timeout_s: float = 60.0, container: str = ""
) -> float | None:
    """The longest stretch between two keyframes of the video (the last one running to the end), read
    from the packets without decoding; None when it cannot be read (no ffprobe, an unreadable file)."""
    ffprobe = ffprobe_binary()
    if not ffprobe:
        return None
    args = [
        ffprobe,
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "packet=pts_time,dts_time,flags",
    ]
    try:
        done = subprocess.run(
            [*args, "-of", "csv=p=0", *input_args(str(path), container)],
            capture_output=True,
            timeout=timeout_s,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    times = []
    for line in done.stdout.decode(errors="replace").splitlines():
        fields = line.split(",")
        if len(fields) >= 3 and "K" in fields[2]:
            with contextlib.suppress(ValueError):
                times.append(float(fields[0] if fields[0] not in ("", "N/A") else fields[1]))
    if not times:
        return None
    times.sort()
    points = [*times, max(duration, times[-1])]
    return max(b - a for a, b in itertools.pairwise(points)) if len(points) > 1 else 0.0
