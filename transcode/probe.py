"""Probing a media file: duration, size, rotation, frame rate, audio. ffprobe when there, else ffmpeg."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from transcode.ffmpeg import ffmpeg_binary, ffprobe_binary

PROBE_TIMEOUT_S = 30.0


class NotAVideo(Exception):
    """The file has no video stream FFmpeg can read; the message is a sentence for the user."""


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


def is_still_image(format_name: str, codec: str, duration: float) -> bool:
    """One picture, which FFmpeg reads as a one-frame video stream: an image format (png_pipe,
    jpeg_pipe, image2...), or a picture codec that lasts (almost) no time."""
    image_format = any(name.endswith("_pipe") or name == "image2" for name in format_name.split(","))
    return image_format or (codec in IMAGE_CODECS and duration < STILL_UNDER_S)


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
            (data.get("format") or {}).get("format_name", ""), video.get("codec_name", ""), duration
        ),
        video_kbps=video_kbps(data, video, streams),
        pix_fmt=video.get("pix_fmt", ""),
        profile=video.get("profile", ""),
        level=int(video.get("level") or 0) if str(video.get("level") or "0").lstrip("-").isdigit() else 0,
        **audio_fields(next((s for s in streams if s.get("codec_type") == "audio"), None)),
    )


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
    }


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
    video_at = next(
        (i for i, line in enumerate(lines) if VIDEO_LINE.search(line) and "attached pic" not in line), None
    )
    if video_at is None:
        raise NotAVideo("The file has no video stream.")
    line = lines[video_at]
    codec = VIDEO_LINE.search(line).group(1)
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
        still=is_still_image(container.group(1) if container else "", codec, seconds),
        video_kbps=int(KBPS.search(line).group(1)) if KBPS.search(line) else 0,
        pix_fmt=pix.group(2) if pix else "",
        profile=(pix.group(1) or "") if pix else "",
    )


async def run(args: list[str], timeout_s: float) -> tuple[int, str, str]:
    """Run a command without blocking the IOLoop; kill it if it outlives the timeout."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise NotAVideo("The file could not be read in time.") from None
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


async def probe(path: Path, *, use_ffprobe: bool = True, timeout_s: float = PROBE_TIMEOUT_S) -> MediaInfo:
    """What the file holds; NotAVideo when it has no readable video stream."""
    ffprobe = ffprobe_binary() if use_ffprobe else None
    if ffprobe:
        code, out, _ = await run(
            [ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
            timeout_s,
        )
        if code != 0:
            raise NotAVideo("The file is not a video FFmpeg can read.")
        info = from_ffprobe(json.loads(out or "{}"))
    else:
        _, _, err = await run([ffmpeg_binary(), "-hide_banner", "-nostdin", "-i", str(path)], timeout_s)
        if "Invalid data found" in err or "Input #0" not in err:
            raise NotAVideo("The file is not a video FFmpeg can read.")
        info = from_ffmpeg(err)
    if info.width <= 0 or info.height <= 0:
        raise NotAVideo("The video stream has no picture size.")
    return info


def stream_start(path: Path, stream: str, packets: int = 8, timeout_s: float = 30.0) -> list[float] | None:
    """The presentation times of the first packets of one stream (`v:0`, `a:0`), sorted; None when they
    cannot be read."""
    ffprobe = ffprobe_binary()
    if not ffprobe:
        return None
    args = [ffprobe, "-v", "error", "-select_streams", stream, "-read_intervals", f"%+#{packets}"]
    args += ["-show_entries", "packet=pts_time", "-of", "csv=p=0", str(path)]
    try:
        done = subprocess.run(args, capture_output=True, timeout=timeout_s, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    times = []
    for line in done.stdout.decode(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            times.append(float(line.strip().rstrip(",")))
    return sorted(times) or None


def audio_start_gap(path: Path) -> float | None:
    """How far the audio starts from the picture once the packets before the picture's start (the AAC
    encoder's priming, which an MP4 hides with an edit list and MPEG-TS cannot) are dropped, in seconds;
    None when unknown."""
    video, audio = stream_start(path, "v:0"), stream_start(path, "a:0")
    if not video or not audio:
        return None
    kept = [t for t in audio if t >= video[0] - 0.0005]
    return abs(kept[0] - video[0]) if kept else None


def max_keyframe_gap(path: Path, duration: float, timeout_s: float = 60.0) -> float | None:
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
            [*args, "-of", "csv=p=0", str(path)], capture_output=True, timeout=timeout_s, check=True
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
