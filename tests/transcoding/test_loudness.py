"""Loudness: every audio rendition measures -16 LUFS +-1 LU (EBU R128), true peak under -1 dBTP, with
the real FFmpeg on clips of a tone and noise made far too quiet or far too loud."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.media import run_ffmpeg
from tests.transcoding.helpers import upload, wait_for_status
from transcode.audio import plan_audio
from transcode.ffmpeg import ffmpeg_binary
from transcode.loudness import Loudness, measure, measure_args

pytestmark = pytest.mark.slow


def tone_and_noise(path: Path, volume_db: float, *, codec: str = "aac", seconds: int = 6) -> Path:
    """A 160x90 clip whose audio is a tone over pink noise, scaled by `volume_db`."""
    run_ffmpeg(
        *["-f", "lavfi", "-i", f"testsrc=size=160x90:rate=25:duration={seconds}"],
        *["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"],
        *["-f", "lavfi", "-i", f"anoisesrc=color=pink:sample_rate=48000:amplitude=0.3:duration={seconds}"],
        *["-filter_complex", f"[1:a][2:a]amix=inputs=2:normalize=0,volume={volume_db}dB[a]"],
        *["-map", "0:v", "-map", "[a]"],
        *["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", codec, "-ac", "2"],
        str(path),
    )
    return path


def loudness_of(path: Path) -> Loudness:
    loudness, code = measure(measure_args(ffmpeg_binary(), str(path)))
    assert code == 0 and loudness is not None
    return loudness


def audio_rendition(settings, doc, scratch: Path) -> Path:
    """The published audio rendition as one fragmented MP4 (init + every segment)."""
    folder = Path(settings.media.root) / Path(doc["hls_path"]).parent / "audio"
    joined = scratch / "audio.mp4"
    joined.write_bytes(b"".join(p.read_bytes() for p in [folder / "init.mp4", *sorted(folder.glob("*.m4s"))]))
    return joined


@pytest.mark.parametrize(("volume_db", "codec"), [(-30, "aac"), (+16, "aac"), (-24, "libmp3lame")])
async def test_a_too_quiet_or_too_loud_source_plays_at_minus_16_lufs(
    api, staff_token, db, settings, tmp_path, volume_db, codec
):
    source = tone_and_noise(tmp_path / f"source-{volume_db}.mp4", volume_db, codec=codec)
    before = await asyncio.to_thread(loudness_of, source)
    assert abs(before.integrated + 16) > 5  # the source is far off the target

    video_id = await upload(api, staff_token, source)
    doc = await wait_for_status(db, video_id, "ready")
    after = await asyncio.to_thread(loudness_of, audio_rendition(settings, doc, tmp_path))

    assert -17 <= after.integrated <= -15
    assert after.true_peak <= -1.0


def test_the_source_aac_is_copied_only_when_it_already_sits_at_the_target():
    at_target = Loudness(integrated=-16.4, lra=3, true_peak=-3)
    quiet = Loudness(integrated=-23, lra=3, true_peak=-9)
    peaky = Loudness(integrated=-16.2, lra=3, true_peak=-0.2)

    assert plan_audio(at_target, -16, lambda: True).copied
    assert not plan_audio(at_target, -16, lambda: False).copied  # MP3, or AAC that may not be copied
    assert not plan_audio(quiet, -16, lambda: True).copied
    assert plan_audio(quiet, -16, lambda: True).gain_filter == "volume=7.00dB"  # a constant gain
    assert not plan_audio(peaky, -16, lambda: True).copied
    assert plan_audio(peaky, -16, lambda: True).gain_filter.startswith("loudnorm=")  # peaks limited


def test_silence_gets_no_gain():
    silence = Loudness(integrated=-70, lra=0, true_peak=-120)
    assert plan_audio(silence, -16, lambda: False).gain_filter == ""
