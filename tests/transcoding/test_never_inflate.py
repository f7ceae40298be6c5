"""Never inflate: no rung is allowed more bits than 1.3x the source's video, nor more frames per second."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from core.config import Settings
from tests.media import read_packets
from tests.transcoding.helpers import upload, wait_for_status
from transcode.ffmpeg import ffmpeg_binary
from transcode.ladder import EncodeSettings, plan_rungs
from transcode.probe import MediaInfo, probe


def source(height: int, kbps: int, fps: float = 30.0) -> MediaInfo:
    return MediaInfo(
        duration=60.0, width=height * 16 // 9, height=height, rotation=0, fps=fps, has_audio=True,
        video_codec="h264", video_kbps=kbps,
    )  # fmt: skip


def configured() -> EncodeSettings:
    ladder = Settings().transcode.ladder
    return EncodeSettings(ladder=tuple((r.height, r.max_kbps, r.level) for r in ladder if r.enabled))


def test_the_ladder_comes_from_the_config_table_with_1440p_and_2160p_there_but_disabled():
    table = {r.height: r for r in Settings().transcode.ladder}
    assert sorted(table) == [120, 360, 720, 1080, 1440, 2160]
    assert not table[1440].enabled and not table[2160].enabled
    rungs = plan_rungs(source(2160, 40_000), configured())
    assert [(r.height, r.max_kbps, r.level) for r in rungs] == [
        (120, 250, "3.0"),
        (360, 900, "3.0"),
        (720, 3000, "3.1"),
        (1080, 6000, "4.0"),
    ]


def test_no_rung_cap_exceeds_1_3_times_a_low_bitrate_source():
    rungs = plan_rungs(source(1080, 1000), configured())
    assert [(r.height, r.max_kbps) for r in rungs] == [(120, 250), (360, 900), (720, 1300), (1080, 1300)]


def test_a_60_fps_1080p_source_raises_the_level_its_rung_needs():
    assert plan_rungs(source(1080, 8000, fps=60.0), configured())[-1].level == "4.2"


def noisy_clip(path: Path, seconds: int, fps: int, kbps: int) -> Path:
    """A picture x264 would spend megabits on, squeezed into `kbps` (so CRF alone would inflate it)."""
    subprocess.run(
        [
            ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc2=size=640x360:rate={fps}:duration={seconds},noise=alls=40:allf=t",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{kbps}k", str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path


async def video_packets(segment: Path) -> tuple[int, str]:
    """Bytes of video packets in a rendition (its playlist), and its stream's frame rate."""
    packets, rate = read_packets(segment, "video")
    return sum(p.size for p in packets), rate


@pytest.mark.slow
async def test_a_low_bitrate_15_fps_source_gets_no_rung_above_its_bitrate_or_frame_rate(
    api, staff_token, tmp_path, db, settings
):
    seconds, kbps = 8, 150
    clip = noisy_clip(tmp_path / "noisy.mp4", seconds, 15, kbps)
    source_kbps = (await probe(clip)).video_kbps
    assert source_kbps <= kbps * 1.1
    video_id = await upload(api, staff_token, clip)
    doc = await wait_for_status(db, video_id, "ready")
    folder = (Path(settings.media.root) / doc["hls_path"]).parent
    cap = 1.3 * source_kbps
    for rung in ("120p", "360p"):
        total, rate = await video_packets(folder / rung / "index.m3u8")
        assert rate == "15/1", f"{rung} at {rate} fps"
        kbps_out = total * 8 / 1000 / seconds
        # The VBV lets a rung exceed its cap by at most its buffer (2x the cap) over the whole clip.
        assert kbps_out <= cap * (1 + 2 / seconds), f"{rung}: {kbps_out:.0f} kbit/s against {source_kbps}"


def test_an_enabled_1440p_rung_is_planned_for_a_1440p_source_with_its_own_cap_and_level():
    from core.config import load_settings
    from services.transcoding import encode_settings
    from transcode.ladder import plan_rungs
    from transcode.probe import MediaInfo

    settings = load_settings(None, environ={})
    for rung in settings.transcode.ladder:
        if rung.height == 1440:
            rung.enabled = True
    source = MediaInfo(
        duration=10, width=2560, height=1440, rotation=0, fps=30, has_audio=True, video_codec="h264"
    )
    rungs = plan_rungs(source, encode_settings(settings.transcode))
    assert [r.height for r in rungs] == [120, 360, 720, 1080, 1440]
    top = rungs[-1]
    assert (top.width, top.max_kbps, top.level) == (2560, 12000, "5.1")
