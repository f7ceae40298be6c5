"""Where FFmpeg is: on PATH when installed, else the binary that the imageio-ffmpeg package ships."""

from __future__ import annotations

import functools
import shutil


@functools.cache
def ffmpeg_binary() -> str:
    """The ffmpeg executable to run."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.cache
def ffprobe_binary() -> str | None:
    """The ffprobe executable, or None (imageio-ffmpeg ships ffmpeg only; probing then parses ffmpeg)."""
    return shutil.which("ffprobe")
