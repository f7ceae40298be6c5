"""Probing sources: structured data from PyAV in a process of its own, never FFmpeg's log text."""

from __future__ import annotations

import asyncio
import sys

import pytest

from tests.media import make_clip, make_huge_frames, make_image, run_ffmpeg
from transcode import probe as probing
from transcode import probe_child
from transcode.probe import (
    NotAVideo,
    OverLimit,
    SourceLimits,
    audio_start_gap,
    max_keyframe_gap,
    probe,
    stream_start,
)

NOT_A_VIDEO = "The file is not a video FFmpeg can read."
NOT_ALLOWED = "The file is not in a format we accept"


async def test_probe_reads_size_duration_rate_codecs_and_audio(clips):
    info = await probe(clips["hd"])
    assert (info.width, info.height, info.rotation) == (640, 360, 0)
    assert info.duration == pytest.approx(1.0, abs=0.1)
    assert info.fps == pytest.approx(25)
    assert info.rate == pytest.approx(25)
    assert (info.video_codec, info.pix_fmt, info.profile) == ("h264", "yuv420p", "Constrained Baseline")
    assert info.level == 30  # x264 picks level 3.0 for 640x360 at 25 fps
    assert 0 < info.video_kbps < 1000
    assert info.has_audio is True
    assert (info.audio_codec, info.audio_profile, info.audio_channels, info.audio_rate) == (
        "aac",
        "LC",
        1,
        44100,
    )
    assert 0 < info.audio_kbps < 200
    assert (info.container, info.still) == ("mov", False)


async def test_probe_sees_a_clip_without_audio(clips):
    info = await probe(clips["silent"])
    assert info.has_audio is False
    assert (info.audio_codec, info.audio_channels, info.audio_rate, info.audio_kbps) == ("", 0, 0, 0)


async def test_probe_names_the_demuxer_of_an_mpeg_ts(tmp_path):
    info = await probe(make_clip(tmp_path / "clip.ts", "320x240"))
    assert (info.container, info.width, info.height, info.has_audio) == ("mpegts", 320, 240, True)


async def test_probe_turns_a_rotated_clip_into_its_displayed_size(tmp_path):
    clip = make_clip(tmp_path / "rotated.mp4", "320x180", audio=False, rotate=90)
    info = await probe(clip)
    assert info.rotation in (90, 270)
    assert (info.width, info.height) == (180, 320)


def test_the_child_times_the_first_packets_of_a_stream_that_states_no_average_rate(clips):
    import av

    with av.open(str(clips["silent"])) as container:
        record = {"index": 0, "codec": "h264", "width": 320, "average_rate": 0.0}
        found = probe_child.first_packets(av, container, record, max_pixels=1_000_000)
    assert len(found["packet_times"]) == 25  # the whole second at 25 fps (fewer than RATE_PACKETS)
    assert probing.packet_rate(found["packet_times"]) == pytest.approx(25, rel=0.01)


async def test_probe_takes_the_measured_rate_when_no_average_is_stated(clips, monkeypatch):
    stream = '{"index": 0, "type": "video", "codec": "h264", "width": 64, "height": 48, "base_rate": 1000.0}'
    times = ", ".join(str(n / 50) for n in range(20))
    printed = (
        f'{{"format": "matroska,webm", "duration": 1.0, "streams": [{stream}], "packet_times": [{times}]}}'
    )
    monkeypatch.setattr(probing, "child_command", lambda *args: [sys.executable, "-c", f"print({printed!r})"])
    info = await probe(clips["small"])
    assert (info.fps, info.rate, info.container) == (1000.0, pytest.approx(50), "matroska")


@pytest.mark.parametrize("codec", ["png", "gif"])
async def test_probe_tells_a_still_image_from_a_video(tmp_path, clips, codec):
    # schemathesis's binary file parts are one-pixel PNGs and GIFs; each became a 0 s video
    image = make_image(tmp_path / f"clip.{codec}", codec=codec).rename(tmp_path / "clip.mp4")
    assert (await probe(image)).still is True
    assert (await probe(clips["small"])).still is False


# --- hostile and broken files -----------------------------------------------------------------------------


async def test_probe_refuses_a_file_that_is_not_media(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(NotAVideo, match=NOT_A_VIDEO):
        await probe(junk)


async def test_probe_refuses_random_bytes(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(bytes((i * 7919 + 13) % 251 for i in range(64 * 1024)))
    with pytest.raises(NotAVideo, match=NOT_A_VIDEO):
        await probe(garbage)


@pytest.mark.parametrize("keep", [0, 100, 4000])
async def test_probe_refuses_a_truncated_clip(tmp_path, clips, keep):
    # An MP4 whose index (moov, written last) was cut off: nothing in it says what the data is.
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clips["hd"].read_bytes()[:keep])
    with pytest.raises(NotAVideo, match=NOT_A_VIDEO):
        await probe(cut)


async def test_probe_refuses_an_audio_file_with_cover_art(tmp_path):
    song = tmp_path / "song.mp3"
    cover = make_image(tmp_path / "cover.png")
    run_ffmpeg(
        *["-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-i", str(cover)],
        *["-map", "0:a", "-map", "1:v", "-c:a", "libmp3lame", "-c:v", "png"],
        *["-disposition:v", "attached_pic", str(song)],
    )
    with pytest.raises(NotAVideo, match="no video stream"):
        await probe(song)


async def test_probe_names_the_size_of_a_picture_the_decoder_refuses_to_allocate(tmp_path):
    # PNG frames copied into Matroska: the container states no size, and the decoder refuses to make a
    # picture over max_pixels; the probe reads the size from the PNG's own header.
    huge = make_huge_frames(tmp_path / "huge.mkv", 9000, 9000)
    with pytest.raises(OverLimit, match=r"9000x9000 \(81.0 megapixels\), more than the 33.2"):
        await probe(huge)


async def test_a_child_killed_by_the_memory_limit_is_a_sentence_naming_the_limit(tmp_path):
    huge = make_huge_frames(tmp_path / "huge.mkv", 16000, 16000)
    # Allowed that many pixels, the decoder needs a 256 MB picture: more than the 256 MiB in all.
    limits = SourceLimits(max_pixels=16000 * 16000, memory_mb=256)
    with pytest.raises(OverLimit, match=r"^Reading the file needs more than the 256 MiB of memory allowed "):
        await probe(huge, limits=limits)


async def test_a_child_that_cannot_even_start_within_the_memory_limit_is_the_same_sentence(clips):
    with pytest.raises(
        OverLimit, match=r"needs more than the 8 MiB of memory allowed \(media.probe_memory_mb\)"
    ):
        await probe(clips["small"], limits=SourceLimits(memory_mb=8))


async def test_a_child_that_outlives_the_timeout_is_killed_and_named(clips):
    with pytest.raises(OverLimit, match=r"took longer than the 0.05 s allowed \(media.probe_timeout_s\)"):
        await probe(clips["small"], limits=SourceLimits(timeout_s=0.05))


@pytest.mark.parametrize(
    "printed",
    [
        "",
        "not json",
        '{"format": "mov", "streams": [{"index": -1, "type": "video", "codec": "h264"}]}',
        '{"format": "mov", "streams": [{"index": 0, "type": "video", "codec": "h264", "width": "640"}]}',
        '{"refused": "because"}',
        '{"format": "mov", "duration": Infinity, "streams": [{"index": 0, "type": "video", "codec": "vp9"}]}',
        '{"format": "mov", "streams": [{"index": 0, "type": "video", "codec": "h264", "average_rate": NaN}]}',
    ],
)
async def test_what_the_child_prints_is_validated_before_it_is_believed(clips, monkeypatch, printed):
    fake = [sys.executable, "-c", f"import sys; sys.stdout.write({printed!r})"]
    monkeypatch.setattr(probing, "child_command", lambda *args: fake)
    with pytest.raises(NotAVideo, match=NOT_A_VIDEO):
        await probe(clips["small"])


async def test_a_child_killed_by_a_signal_is_named_in_the_sentence(clips, monkeypatch):
    fake = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
    monkeypatch.setattr(probing, "child_command", lambda *args: fake)
    with pytest.raises(OverLimit, match=r"\(media.probe_memory_mb\) \(the probe stopped by SIGSEGV\)\.$"):
        await probe(clips["small"])


# --- packet scans (the remux and audio-copy decisions) -----------------------------------------------------


def test_the_keyframe_scan_finds_the_longest_gap_without_decoding(tmp_path):
    clip = tmp_path / "gop.mp4"
    run_ffmpeg(
        *["-f", "lavfi", "-i", "testsrc=size=160x90:rate=25:duration=5"],
        *["-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-keyint_min", "50", str(clip)],
    )
    assert max_keyframe_gap(clip, 5.0, container="mov") == pytest.approx(2.0)
    assert max_keyframe_gap(clip, 9.0, container="mov") == pytest.approx(5.0)  # the last GOP runs to the end


def test_the_packet_scans_read_the_first_packets_of_each_stream(clips):
    video = stream_start(clips["small"], "v:0", packets=8, container="mov")
    assert video is not None and len(video) == 8 and video[0] == 0.0
    assert video[1] == pytest.approx(0.04)
    assert stream_start(clips["silent"], "a:0") is None


def test_the_audio_start_is_unknown_without_audio_or_for_an_unreadable_file(clips, tmp_path):
    assert audio_start_gap(clips["silent"]) is None
    assert audio_start_gap(clips["small"]) == 0.0  # FFmpeg's AAC: its one priming packet, then 0
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    assert audio_start_gap(junk) is None  # so the audio is encoded again, never copied blind
    assert max_keyframe_gap(junk, 1.0) is None


def test_the_packet_scans_open_only_the_demuxer_the_probe_found(clips):
    # A clip read as Matroska when the probe said MP4 (a file swapped after the probe) reads nothing.
    assert max_keyframe_gap(clips["small"], 1.0, container="matroska") is None
    assert max_keyframe_gap(clips["small"], 1.0, container="mov") == pytest.approx(1.0)


async def test_a_probe_given_up_by_its_caller_leaves_no_child_behind(clips):
    import psutil

    task = asyncio.ensure_future(probe(clips["small"]))
    for _ in range(200):  # until its child runs
        children = [p for p in psutil.Process().children() if "probe_child" in " ".join(p.cmdline())]
        if children:
            break
        await asyncio.sleep(0.01)
    assert children, "the probe's child never started"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE for child in children)
