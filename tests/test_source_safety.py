"""FFmpeg opens only the uploaded file, and a source may claim only so much (issue 17, points 2 and 3).

Each attack names a real clip outside MEDIA_ROOT, so that before the allowlist it became a video (201,
then `ready` with that clip's picture); each limit is tried with a small file that claims too much.
"""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.media import make_clip, make_fast, make_huge_frames, make_long_claim, multipart
from transcode.ffmpeg import SOURCE_FORMATS
from transcode.ladder import EncodeSettings, ffmpeg_command, plan_rungs
from transcode.probe import (
    NotAVideo,
    OverLimit,
    SourceLimits,
    child_command,
    max_keyframe_gap,
    probe,
    stream_start,
)

NOT_ALLOWED = "The file is not in a format we accept"


@pytest.fixture(scope="module")
def secret(tmp_path_factory) -> dict[str, Path]:
    """Media outside MEDIA_ROOT that no upload may reach: an MPEG-TS and an MP4 of the test pattern."""
    folder = tmp_path_factory.mktemp("secret")
    return {
        "ts": make_clip(folder / "secret.ts", "320x240", audio=False),
        "mp4": make_clip(folder / "secret.mp4", "320x240", audio=False),
    }


def hls_playlist(secret: dict[str, Path]) -> bytes:
    return (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:1.0,\nfile://{secret['ts']}\n#EXT-X-ENDLIST\n"
    ).encode()


def ffconcat(secret: dict[str, Path]) -> bytes:
    return f"ffconcat version 1.0\nfile {secret['mp4']}\n".encode()


def dash_manifest(secret: dict[str, Path]) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT1S" '
        'minBufferTime="PT1S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">\n'
        '<Period><AdaptationSet mimeType="video/mp4">\n'
        '<Representation id="1" bandwidth="100000" width="320" height="240" codecs="avc1.640015">\n'
        f"<BaseURL>file://{secret['mp4']}</BaseURL>\n"
        "</Representation></AdaptationSet></Period></MPD>\n"
    ).encode()


def avi_with_a_playlist(secret: dict[str, Path]) -> bytes:
    """The AVI of the known FFmpeg exploits: named .avi, its data a playlist that reads another file by
    byte range (FFmpeg picks the demuxer by the content, not the name)."""
    size = secret["ts"].stat().st_size
    return (
        "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-TARGETDURATION:1\n"
        f"#EXTINF:1.0,\n#EXT-X-BYTERANGE:{size}@0\nfile://{secret['ts']}\n#EXT-X-ENDLIST\n"
    ).encode()


ATTACKS = {
    "hls-playlist": (hls_playlist, "clip.mp4"),
    "ffconcat": (ffconcat, "clip.mp4"),
    "dash-manifest": (dash_manifest, "clip.mp4"),
    "avi-with-a-playlist": (avi_with_a_playlist, "holiday.avi"),
}


# --- what an upload leaves behind ----------------------------------------------------------------------


async def nothing_left(settings, db) -> bool:
    root = Path(settings.media.root)
    files = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    return files == [] and await db.videos.count_documents({}) == 0 and await db.jobs.count_documents({}) == 0


async def send_multipart(api, token: str, data: bytes, filename: str):
    body, content_type = multipart({"title": "Holiday"}, data, filename=filename)
    return await api.post("/api/videos/", body=body, headers={"Content-Type": content_type}, token=token)


async def send_tus(api, token: str, data: bytes, filename: str):
    """Create a resumable upload and send the whole file in one PATCH; the last PATCH's answer."""
    meta = ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in {"title": "Holiday", "filename": filename}.items()
    )
    tus = {"Tus-Resumable": "1.0.0"}
    created = await api.post(
        "/api/uploads/",
        body=b"",
        headers={**tus, "Upload-Length": str(len(data)), "Upload-Metadata": meta},
        token=token,
    )
    assert created.code == 201, created.data
    headers = {**tus, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    where = urlsplit(created.headers["Location"]).path
    return await api.patch(where, body=data, headers=headers, token=token)


SENDERS = [pytest.param(send_multipart, id="multipart"), pytest.param(send_tus, id="tus")]


# --- 2. FFmpeg opens only the uploaded file ---------------------------------------------------------------


@pytest.mark.parametrize("send", SENDERS)
@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_a_playlist_or_manifest_naming_a_file_outside_media_root_is_refused_and_leaves_nothing(
    api, staff_token, settings, db, secret, send, attack
):
    make, filename = ATTACKS[attack]
    reply = await send(api, staff_token, make(secret), filename)
    assert reply.code == 400, reply.data
    assert list(reply.data) == ["file"]
    assert reply.data["file"][0].startswith(NOT_ALLOWED)
    assert reply.data["file"][0].endswith("Upload a video file.")
    assert await nothing_left(settings, db)


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_the_probe_opens_no_playlist_whatever_the_file_is_named(tmp_path, secret, attack):
    make, filename = ATTACKS[attack]
    for name in ("source", filename):
        upload = tmp_path / name
        upload.write_bytes(make(secret))
        with pytest.raises(NotAVideo, match=NOT_ALLOWED):
            await probe(upload)


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_the_packet_scans_open_no_playlist_either(tmp_path, secret, attack):
    make, filename = ATTACKS[attack]
    upload = tmp_path / filename
    upload.write_bytes(make(secret))
    for container in ("", "mov", "mpegts"):
        assert max_keyframe_gap(upload, 1.0, container=container) is None
        assert stream_start(upload, "v:0", container=container) is None


def test_the_probe_child_is_given_the_same_allowlist_as_ffmpeg(clips):
    args = child_command("info", clips["small"], "mov")
    assert args[args.index("--formats") + 1].split(",") == list(SOURCE_FORMATS)
    assert args[args.index("--format") + 1] == "mov"
    assert "hls" not in args and "-I" in args  # no PYTHONPATH, user site or working directory


async def test_the_probe_names_the_container_the_transcode_then_reads_it_with(clips):
    assert (await probe(clips["small"])).container == "mov"


async def test_the_transcode_opens_the_source_with_the_file_protocol_and_the_format_the_probe_found(
    clips, tmp_path
):
    info = await probe(clips["small"])
    args = ffmpeg_command("ffmpeg", clips["small"], tmp_path, info, plan_rungs(info), EncodeSettings())
    opened = args[: args.index("-i") + 2]
    assert opened[-1] == f"file:{clips['small']}"
    assert opened[opened.index("-protocol_whitelist") + 1] == "file"
    assert opened[opened.index("-format_whitelist") + 1].split(",") == list(SOURCE_FORMATS)
    assert opened[opened.index("-f") + 1] == "mov"
    assert args.count("-i") == 1


def test_no_playlist_or_sequence_format_is_on_the_list():
    for never in ("hls", "dash", "concat", "image2", "image2pipe", "webm_dash_manifest", "lavfi", "tty"):
        assert never not in SOURCE_FORMATS


# --- 3. What a source may claim ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def claims(tmp_path_factory) -> dict[str, Path]:
    """Small files that claim too much: 10 hours, 16000x16000 pictures, 1000 frames per second."""
    folder = tmp_path_factory.mktemp("claims")
    return {
        "long": make_long_claim(folder / "long.mkv"),
        "huge": make_huge_frames(folder / "huge.mkv"),
        "fast": make_fast(folder / "fast.mkv"),
    }


CLAIMS = {
    "long": "The video lasts 10:00:01, longer than the 4:00:00 allowed (media.max_duration_s).",
    "huge": "The picture is 16000x16000 (256.0 megapixels), more than the 33.2 megapixels allowed "
    "(media.max_pixels).",
    "fast": "The video runs at 1000 frames per second, more than the 240 allowed (media.max_fps).",
}


@pytest.mark.parametrize("send", SENDERS)
@pytest.mark.parametrize("claim", list(CLAIMS))
async def test_a_source_that_claims_more_than_a_limit_is_refused_with_a_sentence_naming_it(
    api, staff_token, settings, db, claims, send, claim
):
    assert claims[claim].stat().st_size < 600_000  # small files, big claims
    reply = await send(api, staff_token, claims[claim].read_bytes(), "clip.mkv")
    assert reply.code == 400, reply.data
    assert reply.data == {"file": [CLAIMS[claim]]}
    assert await nothing_left(settings, db)


async def test_the_probe_sees_the_long_duration_and_the_huge_picture(claims):
    with pytest.raises(OverLimit, match="lasts 10:00:01"):
        await probe(claims["long"])
    with pytest.raises(OverLimit, match="16000x16000"):
        await probe(claims["huge"])
    relaxed = SourceLimits(max_duration_s=36_001, max_pixels=256_000_000, memory_mb=2048)
    assert (await probe(claims["long"], limits=relaxed)).duration == pytest.approx(36_001, abs=1)


async def test_a_frame_rate_at_the_cap_passes_and_one_above_it_is_refused(claims):
    assert (await probe(claims["fast"], limits=SourceLimits(max_fps=1000))).rate == pytest.approx(1000)
    with pytest.raises(OverLimit, match="more than the 999 allowed"):
        await probe(claims["fast"], limits=SourceLimits(max_fps=999))


async def test_a_probe_that_needs_more_memory_than_allowed_is_a_400_naming_the_limit(
    api, staff_token, settings, db, claims, clips
):
    # Allowed that many pixels, the decoder must hold a 256 MB picture: more than 256 MiB in all (the
    # probe's child maps ~125 MiB of Python and FFmpeg's libraries before it reads a byte).
    settings.media.max_pixels = 16000 * 16000
    settings.media.probe_memory_mb = 256
    reply = await send_multipart(api, staff_token, claims["huge"].read_bytes(), "clip.mkv")
    assert reply.code == 400
    assert reply.data == {
        "file": ["Reading the file needs more than the 256 MiB of memory allowed (media.probe_memory_mb)."]
    }
    assert await nothing_left(settings, db)
    # An ordinary clip is read within the same limit.
    assert (await send_multipart(api, staff_token, clips["small"].read_bytes(), "clip.mp4")).code == 201


async def test_a_probe_that_outlives_its_timeout_is_a_400_naming_the_limit(
    api, staff_token, settings, db, clips
):
    settings.media.probe_timeout_s = 0.001
    reply = await send_multipart(api, staff_token, clips["small"].read_bytes(), "clip.mp4")
    assert reply.code == 400
    assert reply.data == {
        "file": ["Reading the file took longer than the 0.001 s allowed (media.probe_timeout_s)."]
    }
    assert await nothing_left(settings, db)


@pytest.mark.parametrize("hostile", ["truncated", "garbage", "empty moov"])
async def test_a_broken_upload_is_a_400_saying_it_is_not_a_readable_video(
    api, staff_token, settings, db, clips, hostile
):
    whole = clips["small"].read_bytes()
    data = {
        "truncated": whole[: len(whole) // 3],
        "garbage": bytes((i * 7919 + 13) % 251 for i in range(64 * 1024)),
        "empty moov": b"\x00\x00\x00\x08moov" + b"\x00" * 64,
    }[hostile]
    reply = await send_multipart(api, staff_token, data, "clip.mp4")
    assert reply.code == 400, reply.data
    assert reply.data["file"][0] in (
        "The file is not a video FFmpeg can read. Upload a video file.",
        "The file has no video stream. Upload a video file.",  # an MP4 box FFmpeg opens, and nothing in it
    )
    assert await nothing_left(settings, db)
