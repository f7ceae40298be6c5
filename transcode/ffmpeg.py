"""Which FFmpeg runs: the one the pinned imageio-ffmpeg package ships, on every machine.

One known FFmpeg (9.0.2 in imageio-ffmpeg 0.8.1) behaves the same everywhere: the ladder's options,
the fMP4 muxer's edit lists and the encoders' defaults are those the tests and benches ran with, not
whatever the host's package manager installed. `transcode.ffmpeg` still names another binary.
The pip package ships no ffprobe, and none is needed: probing (transcode/probe.py) reads sources with
PyAV (the pinned `av` package, FFmpeg's libraries) in a process of its own.
"""

from __future__ import annotations

import functools


@functools.cache
def ffmpeg_binary() -> str:
    """The ffmpeg executable to run when `transcode.ffmpeg` names none: the pinned pip one."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


# What FFmpeg may open of a source, in one place: every transcode opens the upload through `input_args`,
# and the probe's PyAV child (transcode/probe_child.py) is given the same lists. Only containers that
# cameras, phones and editors write (FFmpeg names a demuxer by its first alias: "mov" is
# mov,mp4,m4a,3gp,3g2,mj2 and "matroska" is matroska,webm) and no format that names other files: no
# playlist or manifest (hls, dash, concat), no image sequence (image2).
VIDEO_FORMATS = ("mov", "matroska", "avi", "mpegts", "mpeg", "mxf", "dv", "asf", "flv", "ogg")
AUDIO_FORMATS = ("wav", "mp3", "aac", "flac")
# Single pictures: allowed so that the answer can say "a still image"; each reads its own bytes only.
PICTURE_FORMATS = ("png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "gif")
SOURCE_FORMATS = (*VIDEO_FORMATS, *AUDIO_FORMATS, *PICTURE_FORMATS)
SOURCE_PROTOCOLS = ("file",)


def demuxer_name(format_name: str) -> str:
    """The allowed demuxer a probe found ("mov,mp4,m4a,3gp,3g2,mj2" → "mov"), or "" when none is."""
    first = format_name.split(",", 1)[0].strip()
    return first if first in SOURCE_FORMATS else ""


def input_args(source: str, container: str = "", max_pixels: int | None = None) -> list[str]:
    """How FFmpeg opens a source: the file protocol alone, an allowed format only (the one the
    probe found, when known), and no decoded picture above `max_pixels` (a decoder refuses it before
    allocating it, whatever the file claimed when it was probed)."""
    args = ["-protocol_whitelist", ",".join(SOURCE_PROTOCOLS), "-format_whitelist", ",".join(SOURCE_FORMATS)]
    if max_pixels:
        args += ["-max_pixels", str(max_pixels)]
    if demuxer_name(container):
        args += ["-f", demuxer_name(container)]
    return [*args, "-i", f"file:{source}"]
