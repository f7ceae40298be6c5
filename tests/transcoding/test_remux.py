"""Remux what is already good: a compliant source's video is the top rung as it is; others are encoded."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import pytest

from tests.media import read_packets
from tests.transcoding.helpers import upload, wait_for_status
from transcode.ffmpeg import ffmpeg_binary
from transcode.ladder import EncodeSettings, can_copy_audio, can_remux, plan_rungs
from transcode.probe import MediaInfo, audio_start_gap

pytestmark = [pytest.mark.slow]

AUD = b"\x00\x00\x00\x01\x09\xf0"  # the access unit delimiter MPEG-TS puts before every H.264 frame


def clip(path: Path, *video: str, seconds: int = 3, audio: tuple[str, ...] = ("-c:a", "aac")) -> Path:
    """A 640x360 25 fps H.264 clip with a tone, encoded with the given x264 (and audio) options."""
    subprocess.run(
        [
            ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc=size=640x360:rate=25:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", *video, *audio, "-shortest", str(path),
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
    assert await video_bytes(str(folder / "360p" / "index.m3u8"), "-bsf:v", "h264_mp4toannexb") == original
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
    assert await video_bytes(str(folder / "360p" / "index.m3u8"), "-bsf:v", "h264_mp4toannexb") != original


async def audio_packet_sizes(source: str) -> list[int]:
    """The sizes of the first audio stream's packets (fMP4 and MP4 alike carry them without headers)."""
    return [p.size for p in read_packets(Path(source), "audio")[0]]


@pytest.mark.parametrize(
    "audio",
    [
        pytest.param(("-c:a", "aac", "-ac", "2", "-ar", "48000", "-b:a", "128k"), id="stereo 48 kHz 128k"),
        pytest.param(("-c:a", "aac", "-ar", "44100"), id="mono 44.1 kHz"),
    ],
)
async def test_a_qualifying_aac_track_is_copied_once_as_the_audio_rendition_without_its_priming(
    api, staff_token, tmp_path, db, settings, audio
):
    source = clip(tmp_path / "good.mp4", *COMPLIANT, audio=audio)
    folder = await ladder_of(api, staff_token, db, settings, source)
    original = await audio_packet_sizes(str(source))
    # every packet as it was, but the first: the encoder's priming, before the picture starts
    assert await audio_packet_sizes(str(folder / "audio" / "index.m3u8")) == original[1:]
    for rung in ("120p", "360p"):  # the rungs carry no audio of their own
        assert await audio_packet_sizes(str(folder / rung / "index.m3u8")) == []


@pytest.mark.parametrize(
    ("audio", "audio_bitrate_k"),
    [
        pytest.param(("-c:a", "aac"), 32, id="above 1.3x the audio bitrate setting (about 69 against 32)"),
        pytest.param(("-c:a", "libmp3lame"), 128, id="MP3"),
        pytest.param(("-c:a", "aac", "-ar", "22050"), 128, id="22.05 kHz"),
    ],
)
async def test_an_audio_track_that_does_not_qualify_is_encoded_again(
    api, staff_token, tmp_path, db, settings, audio, audio_bitrate_k
):
    settings.transcode.audio_bitrate_k = audio_bitrate_k
    source = clip(tmp_path / "good.mp4", *COMPLIANT, audio=audio)
    folder = await ladder_of(api, staff_token, db, settings, source)
    original = await audio_packet_sizes(str(source))
    encoded = await audio_packet_sizes(str(folder / "audio" / "index.m3u8"))
    assert encoded and encoded != original[1:]


def test_a_source_that_cannot_be_copied_is_never_scanned_packet_by_packet():
    """The keyframe scan reads every packet (seconds for a film): it runs only when all else qualifies."""
    info = MediaInfo(
        duration=3600, width=1920, height=1080, rotation=0, fps=30, has_audio=True, video_codec="hevc",
        video_kbps=4000, audio_codec="mp3", audio_channels=2, audio_rate=48000, audio_kbps=128,
    )  # fmt: skip
    settings = EncodeSettings()
    scanned = lambda: pytest.fail("the packets were scanned")  # noqa: E731
    assert not can_remux(info, plan_rungs(info, settings), settings, scanned)
    assert not can_copy_audio(info, settings, scanned)


def test_the_audio_start_is_unknown_without_audio_or_for_a_file_that_cannot_be_read(clips, tmp_path):
    assert audio_start_gap(clips["silent"]) is None
    assert audio_start_gap(clips["small"]) == 0.0  # FFmpeg's AAC: its one priming packet, then 0
    unreadable = tmp_path / "cut.mp4"
    unreadable.write_bytes(clips["small"].read_bytes()[:500])
    assert audio_start_gap(unreadable) is None  # so the audio is encoded again, never copied blind
