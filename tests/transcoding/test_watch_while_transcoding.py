"""A video can be watched while it is transcoded: growing EVENT playlists, then the final VOD ladder."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from bson import ObjectId

from tests.media import make_clip
from tests.transcoding.helpers import ffmpeg_reading_at, upload, wait_for, wait_for_status
from transcode.ffmpeg import ffmpeg_binary

pytestmark = pytest.mark.slow


@pytest.fixture
def real_time_ffmpeg(tmp_path, settings):
    """The real FFmpeg reading its input at twice real time, so a 12 s clip takes about 6 s to encode."""
    settings.transcode.ffmpeg = str(ffmpeg_reading_at(tmp_path, 2))


async def run_ffmpeg(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    return proc.returncode, err.decode()


async def decode_duration(url: str, *options: str) -> tuple[int, str, float]:
    """Decode the first video stream of an HLS URL; exit status, errors, seconds decoded."""
    proc = await asyncio.create_subprocess_exec(
        ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-progress", "pipe:1",
        *options, "-i", url, "-map", "0:v:0", "-map", "0:a:0", "-f", "null", "-",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    times = [int(t) for t in re.findall(rb"out_time_us=(\d+)", out)]
    return proc.returncode, err.decode(), (max(times) / 1e6 if times else 0.0)


async def video_json(api, token, video_id):
    reply = await api.get(f"/api/videos/{video_id}/", token=token)
    assert reply.code == 200
    return reply.data


def rung_url(video, rung: str) -> str:
    return video["hls_url"].rsplit("/", 1)[0] + f"/{rung}/index.m3u8"


async def test_a_video_plays_while_it_is_transcoded_and_again_whole_when_ready(
    api, staff_token, db, settings, tmp_path, http_server_client, real_time_ffmpeg
):
    clip = make_clip(tmp_path / "twelve.mp4", "640x360", seconds=12)
    video_id = await upload(api, staff_token, clip)
    await wait_for(db, video_id, lambda doc: doc.get("playable"), timeout=30)

    video = await video_json(api, staff_token, video_id)
    assert video["status"] == "processing" and video["playable"] is True
    assert video["transcode_progress"] >= 1 and video["hls_url"]
    master = await api.get(video["hls_url"])
    assert master.code == 200
    assert "BANDWIDTH=" in master.body.decode() and "AVERAGE-BANDWIDTH" not in master.body.decode()
    assert 'URI="audio/index.m3u8"' in master.body.decode()
    for rung in ("120p", "360p", "audio"):
        playlist = (await api.get(rung_url(video, rung))).body.decode()
        assert "#EXT-X-PLAYLIST-TYPE:EVENT" in playlist
        # the audio, made by an FFmpeg of its own, may be whole (ENDLIST) long before the picture
        assert "#EXT-X-ENDLIST" not in playlist or rung == "audio"
        assert '#EXT-X-MAP:URI="init.mp4"' in playlist
    # The DASH manifest is written once the ladder is whole: HLS EVENT playlists serve the wait.
    assert video["dash_url"] is None

    # A player that starts now reads the growing playlists from the start and waits for what follows.
    url = http_server_client.get_url(video["hls_url"])
    decoding = asyncio.ensure_future(decode_duration(url, "-live_start_index", "0"))
    await asyncio.sleep(0.5)
    assert (await video_json(api, staff_token, video_id))["status"] == "processing"
    code, errors, seconds = await decoding
    assert code == 0, errors
    assert seconds >= 11.5

    await wait_for_status(db, video_id, "ready")
    video = await video_json(api, staff_token, video_id)
    code, errors, seconds = await decode_duration(http_server_client.get_url(video["hls_url"]))
    assert code == 0, errors
    assert errors.strip() == ""
    assert seconds >= 11.5
    for rung in ("120p", "360p", "audio"):
        playlist = (await api.get(rung_url(video, rung))).body.decode()
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist and playlist.rstrip().endswith("#EXT-X-ENDLIST")
    master = (await api.get(video["hls_url"])).body.decode()
    assert "AVERAGE-BANDWIDTH=" in master
    code, errors, seconds = await decode_duration(http_server_client.get_url(video["dash_url"]))
    assert code == 0, errors
    assert seconds >= 11.5


async def test_the_live_folder_lists_only_complete_segments(
    api, staff_token, db, settings, tmp_path, real_time_ffmpeg
):
    clip = make_clip(tmp_path / "twelve.mp4", "640x360", seconds=12)
    video_id = await upload(api, staff_token, clip)
    doc = await wait_for(db, video_id, lambda doc: doc.get("playable"), timeout=30)
    live = (Path(settings.media.root) / doc["live_path"]).parent
    checked = 0
    while (await db.videos.find_one({"_id": doc["_id"]}))["status"] == "processing":
        for playlist in live.glob("*/index.m3u8"):
            for name in re.findall(r"^(seg_\d+\.m4s)$", playlist.read_text(), re.M):
                segment = playlist.parent / name
                try:  # a CMAF segment decodes after its rendition's init segment
                    fragment = (playlist.parent / "init.mp4").read_bytes() + segment.read_bytes()
                except FileNotFoundError:  # the job finished and moved the folder meanwhile
                    break
                (tmp_path / "fragment.mp4").write_bytes(fragment)
                code, errors = await run_ffmpeg(
                    "-i", str(tmp_path / "fragment.mp4"), "-map", "0", "-f", "null", "-"
                )
                if not live.exists():  # the job finished and moved the folder meanwhile
                    break
                assert code == 0, f"{segment}: {errors}"
                checked += 1
        await asyncio.sleep(0.2)
    assert checked >= 4


async def test_progress_moves_while_a_real_ffmpeg_encodes_with_its_thumbnail_and_storyboard(
    api, staff_token, db, tmp_path, real_time_ffmpeg
):
    # FFmpeg's own progress report waits until every output has a frame: the thumbnail's comes seconds
    # in, a storyboard sheet's only once the sheet is full (here: at the very end).
    clip = make_clip(tmp_path / "twelve.mp4", "640x360", seconds=12)
    video_id = await upload(api, staff_token, clip)
    seen: set[int] = set()
    while (doc := await db.videos.find_one({"_id": ObjectId(video_id)}))["status"] != "ready":
        if doc["status"] == "processing":
            seen.add(doc["transcode_progress"])
        await asyncio.sleep(0.05)
    moving = sorted(p for p in seen if 1 < p < 100)
    assert len(moving) >= 3, f"progress seen while processing: {sorted(seen)}"
