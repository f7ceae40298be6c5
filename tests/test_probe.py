"""Probing sources: the same answers from ffprobe and from ffmpeg alone (what pip install gives)."""

from __future__ import annotations

import pytest

from tests.media import make_clip, make_image
from transcode.ffmpeg import ffprobe_binary
from transcode.probe import NotAVideo, from_ffmpeg, probe

BOTH = [
    pytest.param(False, id="ffmpeg-only"),
    pytest.param(True, id="ffprobe", marks=pytest.mark.skipif(not ffprobe_binary(), reason="no ffprobe")),
]


@pytest.mark.parametrize("use_ffprobe", BOTH)
async def test_probe_reads_size_duration_rate_and_audio(clips, use_ffprobe):
    info = await probe(clips["hd"], use_ffprobe=use_ffprobe)
    assert (info.width, info.height, info.rotation) == (640, 360, 0)
    assert info.duration == pytest.approx(1.0, abs=0.1)
    assert info.fps == pytest.approx(25)
    assert info.has_audio is True
    assert info.video_codec == "h264"


@pytest.mark.parametrize("use_ffprobe", BOTH)
async def test_probe_sees_a_clip_without_audio(clips, use_ffprobe):
    assert (await probe(clips["silent"], use_ffprobe=use_ffprobe)).has_audio is False


@pytest.mark.parametrize("use_ffprobe", BOTH)
async def test_probe_turns_a_rotated_clip_into_its_displayed_size(tmp_path, use_ffprobe):
    clip = make_clip(tmp_path / "rotated.mp4", "320x180", audio=False, rotate=90)
    info = await probe(clip, use_ffprobe=use_ffprobe)
    assert info.rotation in (90, 270)
    assert (info.width, info.height) == (180, 320)


@pytest.mark.parametrize("use_ffprobe", BOTH)
async def test_probe_refuses_a_file_that_is_not_media(tmp_path, use_ffprobe):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(NotAVideo, match="not a video"):
        await probe(junk, use_ffprobe=use_ffprobe)


@pytest.mark.parametrize("use_ffprobe", BOTH)
@pytest.mark.parametrize("codec", ["png", "gif"])
async def test_probe_tells_a_still_image_from_a_video(tmp_path, clips, use_ffprobe, codec):
    # schemathesis's binary file parts are one-pixel PNGs and GIFs; each became a 0 s video
    image = make_image(tmp_path / f"clip.{codec}", codec=codec).rename(tmp_path / "clip.mp4")
    assert (await probe(image, use_ffprobe=use_ffprobe)).still is True
    assert (await probe(clips["small"], use_ffprobe=use_ffprobe)).still is False


def test_the_ffmpeg_parser_ignores_cover_art_and_needs_a_real_video_stream():
    stderr = (
        "Input #0, mp3, from 'song.mp3':\n  Duration: 00:03:00.00, start: 0.0, bitrate: 128 kb/s\n"
        "  Stream #0:0: Audio: mp3, 44100 Hz, stereo, fltp, 128 kb/s\n"
        "  Stream #0:1: Video: mjpeg (Baseline), yuvj420p(pc), 500x500, 90k tbr, 90k tbn (attached pic)\n"
    )
    with pytest.raises(NotAVideo, match="no video stream"):
        from_ffmpeg(stderr)


def test_the_ffmpeg_parser_reads_the_rotation_as_newer_ffmpeg_prints_it():
    stderr = (
        "Input #0, mov,mp4, from 'phone.mp4':\n  Duration: 00:00:01.00, start: 0.0, bitrate: 208 kb/s\n"
        "  Stream #0:0[0x1](und): Video: h264 (High), yuv420p(progressive), 320x180 [SAR 1:1 DAR 16:9], "
        "201 kb/s, 25 fps, 25 tbr, 12800 tbn (default)\n    Metadata:\n      handler_name    : VideoHandler\n"
        "    Side data:\n      Display Matrix: rotation of 90.00 degrees\n"
    )
    info = from_ffmpeg(stderr)
    assert (info.width, info.height, info.rotation) == (180, 320, 90)


def test_the_ffmpeg_parser_reads_hours_and_odd_frame_rates():
    stderr = (
        "Input #0, mov,mp4, from 'film.mov':\n  Duration: 01:02:03.50, start: 0.0, bitrate: 5000 kb/s\n"
        "  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709), 1920x1080 "
        "[SAR 1:1 DAR 16:9], 4800 kb/s, 29.97 fps, 29.97 tbr, 30k tbn (default)\n"
        "      Side data:\n        displaymatrix: rotation of -90.00 degrees\n"
    )
    info = from_ffmpeg(stderr)
    assert info.duration == pytest.approx(3723.5)
    assert info.fps == pytest.approx(29.97)
    assert (info.width, info.height, info.rotation) == (1080, 1920, 270)
    assert info.has_audio is False
