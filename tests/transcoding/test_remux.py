"""Remux what is already good: a compliant source's video is the top rung as it is; others are encoded."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import pytest

from tests.transcoding.helpers import upload, wait_for_status
from transcode.ffmpeg import ffmpeg_binary, ffprobe_binary

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(ffprobe_binary() is None, reason="finding keyframes without decoding needs ffprobe"),
]

AUD = b"\x00\x00\x00\x01\x09\xf0"  # the access unit delimiter MPEG-TS puts before every H.264 frame


def clip(path: Path, *video: str, seconds: int = 3) -> Path:
    """A 640x360 25 fps H.264 clip with a tone, encoded with the given x264 options."""
    subprocess.run(
        [
            ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc=size=640x360:rate=25:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", *video, "-c:a", "aac", "-shortest", str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path


COMPLIANT = ("-pix_fmt", "yuv420p", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0")


async def video_bytes(source: str, *bsf: str) -> bytes:
    """The video stream's H.264 bytes in Annex B form, AUDs left out."""
    proc = await asyncio.create_subprocess_exec(
        ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-i", source, "-map", "0:v:0", "-c", "copy",
        *bsf, "-f", "data", "-", stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    return out.replace(AUD, b"")


async def ladder_of(api, staff_token, db, settings, source: Path) -> Path:
    video_id = await upload(api, staff_token, source)
    doc = await wait_for_status(db, video_id, "ready")
    return (Path(settings.media.root) / doc["hls_path"]).parent


async def test_a_compliant_upload_keeps_its_own_video_as_the_top_rung_and_cuts_all_rungs_together(
    api, staff_token, tmp_path, db, settings
):
    source = clip(tmp_path / "good.mp4", *COMPLIANT)
    folder = await ladder_of(api, staff_token, db, settings, source)
    original = await video_bytes(str(source), "-bsf:v", "h264_mp4toannexb")
    assert await video_bytes(str(folder / "360p" / "index.m3u8")) == original
    low, high = (
        re.findall(r"#EXTINF:([\d.]+),", (folder / rung / "index.m3u8").read_text())
        for rung in ("120p", "360p")
    )
    assert len(high) == 3 and low == high


@pytest.mark.parametrize(
    "video",
    [
        pytest.param(("-pix_fmt", "yuv444p", "-g", "25"), id="4:4:4 pixels"),
        pytest.param(("-pix_fmt", "yuv420p", "-g", "75"), id="keyframes 3 s apart"),
        pytest.param(
            ("-pix_fmt", "yuv420p", "-g", "25", "-b:v", "3000k", "-minrate", "3000k"), id="3 Mbit/s"
        ),
    ],
)
async def test_a_non_compliant_upload_is_encoded_again(api, staff_token, tmp_path, db, settings, video):
    source = clip(tmp_path / "other.mp4", *video)
    folder = await ladder_of(api, staff_token, db, settings, source)
    original = await video_bytes(str(source), "-bsf:v", "h264_mp4toannexb")
    assert await video_bytes(str(folder / "360p" / "index.m3u8")) != original
