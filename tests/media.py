"""Test media: tiny clips generated with FFmpeg's lavfi sources, and multipart bodies."""

from __future__ import annotations

import struct
import subprocess
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

from transcode.ffmpeg import ffmpeg_binary


def make_clip(
    path: Path, size: str, seconds: float = 1.0, *, audio: bool = True, rotate: int | None = None
) -> Path:
    """An H.264 clip of the test pattern (with a sine tone when `audio`)."""
    args = [
        ffmpeg_binary(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc=size={size}:rate=25:duration={seconds}",
    ]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac", "-shortest"]
    plain = path.with_name(f"plain-{path.name}") if rotate is not None else path
    args.append(str(plain))
    subprocess.run(args, check=True, timeout=60)
    if rotate is not None:
        set_rotation(plain, path, rotate)
    return path


def make_image(path: Path, size: str = "64x48", codec: str = "png") -> Path:
    """One picture of the test pattern, PNG or GIF (FFmpeg reads it as a one-frame video stream)."""
    muxer = {"png": ["-f", "image2", "-c:v", "png"], "gif": ["-f", "gif"]}[codec]
    args = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i"]
    args += [f"testsrc=size={size}:rate=1", "-frames:v", "1", *muxer, str(path)]
    subprocess.run(args, check=True, timeout=60)
    return path


def set_rotation(source: Path, target: Path, degrees: int) -> None:
    """Copy a clip with a display rotation (FFmpeg 6.1+: -display_rotation; older: rotate metadata)."""
    base = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y"]
    newer = subprocess.run(
        [*base, "-display_rotation", str(degrees), "-i", str(source), "-c", "copy", str(target)],
        capture_output=True,
        timeout=60,
    )
    if newer.returncode != 0:
        subprocess.run(
            [*base, "-i", str(source), "-c", "copy", "-metadata:s:v:0", f"rotate={degrees}", str(target)],
            check=True,
            timeout=60,
        )


def make_clips(folder: Path) -> dict[str, Path]:
    return {
        "small": make_clip(folder / "small.mp4", "426x240", audio=True),
        "hd": make_clip(folder / "hd.mp4", "640x360", audio=True),
        "silent": make_clip(folder / "silent.mp4", "320x240", audio=False),
        "portrait": make_clip(folder / "portrait.mp4", "240x426", audio=False),
    }


def multipart(
    fields: dict[str, str], file: bytes | None = None, filename: str = "clip.mp4"
) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    if file is not None:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: video/mp4\r\n\r\n".encode()
            + file
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def run_ffmpeg(*args: str) -> None:
    """FFmpeg, quiet, overwriting."""
    subprocess.run(
        [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True, timeout=60
    )


def make_long_claim(path: Path, seconds: int = 36_000) -> Path:
    """A tiny MKV of two frames, the second at `seconds` in: a file of a few KB that lasts 10 hours."""
    run_ffmpeg(
        *["-f", "lavfi", "-i", "testsrc=size=64x48:rate=1", "-frames:v", "2"],
        *["-vf", f"setpts=N*{seconds}/TB", "-fps_mode", "passthrough"],
        *["-c:v", "libx264", "-preset", "ultrafast", str(path)],
    )
    return path


def make_fast(path: Path, fps: int = 1000) -> Path:
    """A clip of 50 frames at `fps` frames per second (in Matroska: no stated average rate)."""
    run_ffmpeg(
        *["-f", "lavfi", "-i", f"testsrc=size=64x48:rate={fps}", "-frames:v", "50"],
        *["-c:v", "libx264", "-preset", "ultrafast", str(path)],
    )
    return path


def solid_png(width: int, height: int, grey: int = 0x60) -> bytes:
    """A valid 8-bit greyscale PNG of one colour, made row by row (a 16000x16000 one is ~280 KB and takes
    this process a few MB): every row after the first is 'same as above' (PNG filter 2), all zeros."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    deflate = zlib.compressobj(6)
    parts = [deflate.compress(b"\x00" + bytes([grey]) * width)]
    same = b"\x02" + bytes(width)
    for done in range(1, height, 256):
        parts.append(deflate.compress(same * min(256, height - done)))
    parts.append(deflate.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")
    )


def make_huge_frames(path: Path, width: int = 16000, height: int = 16000) -> Path:
    """An MKV of two solid width x height PNG frames at 1 fps, copied in without re-encoding (~560 KB)."""
    pictures = path.with_suffix(".png")
    pictures.write_bytes(solid_png(width, height) * 2)
    run_ffmpeg("-f", "png_pipe", "-framerate", "1", "-i", str(pictures), "-c", "copy", str(path))
    pictures.unlink()
    return path


def jpeg_size(data: bytes) -> tuple[int, int]:
    """A JPEG's (width, height), read from its frame header (the source probe opens no image2 file)."""
    at = 2
    while at + 9 < len(data):
        marker, length = data[at + 1], struct.unpack(">H", data[at + 2 : at + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        at += 2 + length
    raise ValueError("no JPEG frame header")


@dataclass(frozen=True)
class PacketRead:
    """One packet as a test reads it: its stream's type, presentation time (s), size and key flag."""

    kind: str
    pts: float | None
    size: int
    key: bool


def read_packets(path: Path, kind: str | None = None, limit: int = 0) -> tuple[list[PacketRead], str]:
    """A file's packets (an HLS playlist's too), read with PyAV without decoding: those of the first
    stream of `kind` ("video", "audio") or of every stream, the first `limit` when given; and the first
    video stream's average frame rate ("15/1"), "" when there is none. A test's own tool, not the app's
    probe: it opens playlists, which the probe never does."""
    import av

    with av.open(str(path)) as container:
        streams = [s for s in container.streams if kind is None or s.type == kind][: 1 if kind else None]
        video = next((s for s in container.streams if s.type == "video"), None)
        rate = str(video.average_rate) if video is not None and video.average_rate else ""
        if "/" not in rate and rate:
            rate += "/1"
        found: list[PacketRead] = []
        for packet in container.demux(streams) if streams else ():
            if packet.size == 0:
                continue
            pts = (
                float(packet.pts * packet.time_base) if packet.pts is not None and packet.time_base else None
            )
            found.append(PacketRead(packet.stream.type, pts, packet.size, packet.is_keyframe))
            if limit and len(found) >= limit:
                break
    return found, rate
