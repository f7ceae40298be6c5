"""A clean start: in every rung's first segment, audio and video begin at the same instant."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.media import make_clip
from tests.transcoding.helpers import upload, wait_for_status
from transcode.ffmpeg import ffprobe_binary

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(ffprobe_binary() is None, reason="reading packet timestamps needs ffprobe"),
]


async def first_pts(segment: Path) -> dict[str, float]:
    """The earliest presentation time of each stream type's packets in a segment."""
    proc = await asyncio.create_subprocess_exec(
        ffprobe_binary(), "-v", "error", "-show_entries", "packet=codec_type,pts_time", "-of", "csv=p=0",
        str(segment), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    first: dict[str, float] = {}
    for line in out.decode().split():
        kind, pts = line.split(",")[:2]
        first[kind] = min(first.get(kind, float("inf")), float(pts))
    return first


@pytest.mark.parametrize(
    ("preset", "audio_bitrate_k"),
    [
        pytest.param("ultrafast", 128, id="ultrafast, the source's AAC copied"),
        pytest.param("veryfast", 128, id="veryfast (B-frames delay the video), AAC copied"),
        pytest.param("ultrafast", 32, id="ultrafast, AAC encoded again (the source is above 1.3x 32k)"),
        pytest.param("veryfast", 32, id="veryfast, AAC encoded again"),
    ],
)
async def test_audio_and_video_of_every_rung_start_at_the_same_timestamp(
    api, staff_token, tmp_path, db, settings, preset, audio_bitrate_k
):
    settings.transcode.preset = preset
    settings.transcode.audio_bitrate_k = audio_bitrate_k
    clip = make_clip(tmp_path / "tone.mp4", "640x360", seconds=2.0)
    video_id = await upload(api, staff_token, clip)
    doc = await wait_for_status(db, video_id, "ready")
    folder = (Path(settings.media.root) / doc["hls_path"]).parent
    for rung in ("120p", "360p"):
        first = await first_pts(folder / rung / "seg_00000.ts")
        assert set(first) == {"audio", "video"}
        assert abs(first["audio"] - first["video"]) < 0.001, f"{rung}: {first}"
