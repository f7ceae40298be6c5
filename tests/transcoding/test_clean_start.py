"""A clean start: every rung's video and the audio rendition begin at the same instant.

CMAF renditions are outputs of their own: a rung with B-frames would start two frames after the audio
if FFmpeg shifted its timestamps (66 ms at 30 fps); the edit list in its init.mp4 trims that delay
instead, so a player presents the first frame and the first sample together (FFmpeg's demuxer, read
through PyAV, applies the edit list as players do)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.media import make_clip, read_packets
from tests.transcoding.helpers import upload, wait_for_status

pytestmark = [pytest.mark.slow]


async def first_pts(playlist: Path) -> dict[str, float]:
    """The earliest presentation time of each stream type's packets in a rendition (its playlist)."""
    first: dict[str, float] = {}
    for packet in read_packets(playlist, limit=30)[0]:
        if packet.pts is not None:
            first[packet.kind] = min(first.get(packet.kind, float("inf")), packet.pts)
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
    audio = await first_pts(folder / "audio" / "index.m3u8")
    assert set(audio) == {"audio"}
    for rung in ("120p", "360p"):
        video = await first_pts(folder / rung / "index.m3u8")
        assert set(video) == {"video"}  # the audio is its own rendition, encoded once
        assert abs(audio["audio"] - video["video"]) < 0.001, f"{rung}: {video} against {audio}"
