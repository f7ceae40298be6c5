"""Test media: tiny clips generated with FFmpeg's lavfi sources, and multipart bodies."""

from __future__ import annotations

import subprocess
import uuid
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
