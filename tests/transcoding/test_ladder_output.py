"""Transcoding with the real FFmpeg on tiny generated clips: the ladder, its playlists and its files."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import pytest
from bson import ObjectId

from tests.media import jpeg_size, make_clip
from tests.transcoding.helpers import media_files, probe_rendition, upload, wait_for, wait_for_status
from transcode.ffmpeg import ffmpeg_binary
from transcode.ladder import EncodeSettings, ffmpeg_command, plan_rungs, renditions, thumbnail_at
from transcode.probe import probe

pytestmark = pytest.mark.slow


def output(settings, doc) -> Path:
    return Path(settings.media.root) / Path(doc["hls_path"]).parent


def segment_durations(playlist: Path) -> list[str]:
    return re.findall(r"#EXTINF:([\d.]+),", playlist.read_text())


async def test_a_240p_upload_becomes_ready_with_the_120p_rung_only(api, staff_token, clips, db, settings):
    video_id = await upload(api, staff_token, clips["small"])
    doc = await wait_for_status(db, video_id, "ready")
    assert doc["renditions"] == [
        {"height": 120, "width": 214, "bandwidth": doc["renditions"][0]["bandwidth"]}
    ]
    assert doc["transcode_progress"] == 100 and doc["error"] is None
    folder = output(settings, doc)
    assert (folder / "master.m3u8").exists() and (folder / "thumbnail.jpg").exists()
    assert sorted(p.name for p in folder.iterdir()) == [
        "120p",
        "audio",
        "manifest.mpd",
        "master.m3u8",
        "presentation.json",
        "storyboard.jpg",
        "storyboard.vtt",
        "thumbnail.jpg",
    ]
    assert sorted(p.name for p in (folder / "120p").iterdir()) == ["index.m3u8", "init.mp4", "seg_00001.m4s"]


async def test_a_360p_clip_with_audio_gets_120p_and_360p_and_one_aac_rendition(
    api, staff_token, clips, db, settings
):
    video_id = await upload(api, staff_token, clips["hd"])
    doc = await wait_for_status(db, video_id, "ready")
    assert [(r["height"], r["width"]) for r in doc["renditions"]] == [(120, 214), (360, 640)]
    folder = output(settings, doc)
    for rung, (width, height) in (("120p", (214, 120)), ("360p", (640, 360))):
        info = await probe_rendition(folder / rung)
        assert (info.width, info.height) == (width, height)
        assert not info.has_audio  # the audio is encoded once, beside the rungs
        assert info.video_codec == "h264"
    audio = (folder / "audio" / "index.m3u8").read_text()
    assert '#EXT-X-MAP:URI="init.mp4"' in audio and "seg_00001.m4s" in audio


async def test_the_renditions_are_cmaf_segments_that_the_hls_master_and_the_mpd_share(
    api, staff_token, clips, db, settings
):
    video_id = await upload(api, staff_token, clips["hd"])
    doc = await wait_for_status(db, video_id, "ready")
    folder = output(settings, doc)
    assert doc["dash_path"] == doc["hls_path"].replace("master.m3u8", "manifest.mpd")
    for rendition in ("120p", "360p", "audio"):
        assert (folder / rendition / "init.mp4").read_bytes()[4:8] == b"ftyp"
        playlist = (folder / rendition / "index.m3u8").read_text()
        assert '#EXT-X-MAP:URI="init.mp4"' in playlist
        listed = re.findall(r"^(seg_\d{5}\.m4s)$", playlist, re.MULTILINE)
        assert listed == sorted(p.name for p in (folder / rendition).glob("*.m4s"))
    mpd = (folder / "manifest.mpd").read_text()
    for rendition in ("120p", "360p", "audio"):
        assert f'initialization="{rendition}/init.mp4"' in mpd
        assert f'media="{rendition}/seg_$Number%05d$.m4s" startNumber="1"' in mpd
    master = (folder / "master.m3u8").read_text()
    for codecs in re.findall(r'<Representation id="\d+p" codecs="([^"]+)"', mpd):
        assert f'CODECS="{codecs},mp4a.40.2"' in master  # one reading of the same init segments
    assert re.search(r'codecs="avc1\.[0-9a-f]{6}" bandwidth="\d+" width="640" height="360"', mpd)
    assert 'contentType="audio"' in mpd and 'codecs="mp4a.40.2"' in mpd
    durations = [float(d) for d in re.findall(r"#EXTINF:([\d.]+),", (folder / "360p/index.m3u8").read_text())]
    assert mpd.count('<S t="') >= 1 and f'mediaPresentationDuration="PT{sum(durations):.3f}S"' in mpd


async def test_the_master_playlist_names_bandwidth_resolution_and_codecs(
    api, staff_token, clips, db, settings
):
    video_id = await upload(api, staff_token, clips["hd"])
    doc = await wait_for_status(db, video_id, "ready")
    master = (output(settings, doc) / "master.m3u8").read_text()
    assert master.startswith("#EXTM3U")
    assert re.search(
        r'^#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",.*URI="audio/index\.m3u8"$', master, re.MULTILINE
    )
    *entries, audio_only = re.findall(r"#EXT-X-STREAM-INF:(.*)\n(\S+)", master)
    assert [uri for _, uri in entries] == ["120p/index.m3u8", "360p/index.m3u8"]
    # last, the audio-only variant Apple's authoring rules ask for (hls.js skips it beside pictures)
    assert audio_only[1] == "audio/index.m3u8" and 'CODECS="mp4a.40.2"' in audio_only[0]
    for attributes, _ in entries:
        assert re.search(r"(^|,)BANDWIDTH=\d+", attributes)
        assert re.search(r"AVERAGE-BANDWIDTH=\d+", attributes)
        # exact, from each rung's init segment: the tests' ultrafast x264 writes Constrained Baseline
        assert re.search(r'CODECS="avc1\.(42|4d|64)[0-9a-f]{4},mp4a\.40\.2"', attributes)
        assert 'AUDIO="aud"' in attributes
    assert "RESOLUTION=214x120" in entries[0][0] and "RESOLUTION=640x360" in entries[1][0]
    variant = (output(settings, doc) / "360p" / "index.m3u8").read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in variant and "#EXT-X-ENDLIST" in variant


async def test_keyframes_are_aligned_so_every_rung_cuts_at_the_same_times(
    api, staff_token, tmp_path, db, settings
):
    clip = make_clip(tmp_path / "three.mp4", "640x360", seconds=3.0)
    video_id = await upload(api, staff_token, clip)
    doc = await wait_for_status(db, video_id, "ready")
    folder = output(settings, doc)
    low, high = (segment_durations(folder / rung / "index.m3u8") for rung in ("120p", "360p"))
    assert len(low) == 3
    assert low == high


async def test_a_clip_without_audio_has_no_audio_codec_in_the_master(api, staff_token, clips, db, settings):
    video_id = await upload(api, staff_token, clips["silent"])
    doc = await wait_for_status(db, video_id, "ready")
    master = (output(settings, doc) / "master.m3u8").read_text()
    assert "mp4a" not in master and "EXT-X-MEDIA" not in master and "AUDIO=" not in master
    assert not (output(settings, doc) / "audio").exists()
    assert 'contentType="audio"' not in (output(settings, doc) / "manifest.mpd").read_text()
    assert not (await probe_rendition(output(settings, doc) / "120p")).has_audio


async def test_a_portrait_clip_keeps_its_aspect_with_even_widths(api, staff_token, clips, db):
    video_id = await upload(api, staff_token, clips["portrait"])
    doc = await wait_for_status(db, video_id, "ready")
    assert [(r["height"], r["width"]) for r in doc["renditions"]] == [(120, 68), (360, 202)]


async def test_a_rotated_clip_is_transcoded_upright(api, staff_token, tmp_path, db, settings):
    clip = make_clip(tmp_path / "rotated.mp4", "320x180", audio=False, rotate=90)
    video_id = await upload(api, staff_token, clip)
    doc = await wait_for_status(db, video_id, "ready")
    assert (doc["width"], doc["height"]) == (180, 320)
    assert [(r["height"], r["width"]) for r in doc["renditions"]] == [(120, 68)]
    info = await probe_rendition(output(settings, doc) / "120p")
    assert (info.width, info.height) == (68, 120)


async def test_the_thumbnail_is_a_jpeg_of_the_picture(api, staff_token, clips, db, settings):
    video_id = await upload(api, staff_token, clips["hd"])
    doc = await wait_for_status(db, video_id, "ready")
    thumbnail = Path(settings.media.root) / doc["thumbnail_path"]
    assert thumbnail.read_bytes()[:3] == b"\xff\xd8\xff"
    assert jpeg_size(thumbnail.read_bytes())[0] == 640


async def test_a_retranscode_keeps_the_video_playable_and_replaces_the_ladder_when_whole(
    api, staff_token, clips, db, settings
):
    video_id = await upload(api, staff_token, clips["small"])
    first = await wait_for_status(db, video_id, "ready")
    reply = await api.post(f"/api/videos/{video_id}/retranscode/", token=staff_token)
    assert reply.code == 202
    assert (await db.videos.find_one({"_id": ObjectId(video_id)}))["status"] == "ready"
    second = await wait_for(
        db, video_id, lambda doc: doc["status"] == "ready" and doc["hls_path"] != first["hls_path"]
    )
    for _ in range(100):  # the old ladder goes right after the video points at the new one
        if not output(settings, first).exists():
            break
        await asyncio.sleep(0.05)
    assert not output(settings, first).exists()
    assert (output(settings, second) / "master.m3u8").exists()
    assert not [p for p in media_files(settings, video_id) if ".hls-tmp" in str(p)]


async def test_an_admin_inserted_pending_video_is_picked_up_and_transcoded(db, settings, clips, api):
    imports = Path(settings.media.root) / "imports"
    imports.mkdir(parents=True)
    (imports / "film.mp4").write_bytes(clips["small"].read_bytes())
    result = await db.videos.insert_one(
        {
            "title": "Imported",
            "description": "",
            "category_id": None,
            "status": "pending",
            "source": "imports/film.mp4",
            "transcode_progress": 0,
            "renditions": [],
        }
    )
    doc = await wait_for_status(db, str(result.inserted_id), "ready")
    assert doc["renditions"][0]["height"] == 120
    assert (imports / "film.mp4").exists()


async def test_deleting_a_ready_video_removes_every_file(api, staff_token, clips, db, settings):
    video_id = await upload(api, staff_token, clips["small"])
    await wait_for_status(db, video_id, "ready")
    assert (await api.delete(f"/api/videos/{video_id}/", token=staff_token)).code == 204
    assert media_files(settings, video_id) == []


async def test_the_admin_recipe_to_queue_a_failed_video_again_works(db, settings, clips, api):
    result = await db.videos.insert_one(
        {
            "title": "Missing at first",
            "description": "",
            "category_id": None,
            "status": "pending",
            "source": "imports/late.mp4",
            "transcode_progress": 0,
            "renditions": [],
        }
    )
    video_id = result.inserted_id
    assert (await wait_for_status(db, str(video_id), "failed"))["error"] == "The source file is missing."
    imports = Path(settings.media.root) / "imports"
    imports.mkdir(parents=True)
    (imports / "late.mp4").write_bytes(clips["small"].read_bytes())
    # docs/admin.md: "Queue a failed video again"
    await db.videos.update_one({"_id": video_id}, {"$set": {"status": "pending", "error": None}})
    await db.jobs.delete_one({"key": f"transcode:{video_id}"})
    assert (await wait_for_status(db, str(video_id), "ready"))["error"] is None


async def test_the_thumbnail_is_chosen_from_25_frames_and_no_more_are_scaled_for_it(tmp_path):
    """The thumbnail's branch of the ladder's graph stops taking frames once it has its 25: a film's
    every later frame is not scaled for nothing. Seen by a `showinfo` on that branch, in the real FFmpeg."""
    clip = make_clip(tmp_path / "twelve.mp4", "320x240", seconds=12, audio=False)
    info = await probe(clip)
    rungs = plan_rungs(info)
    for name in renditions(rungs, info.has_audio):
        (tmp_path / "out" / name).mkdir(parents=True)
    args = ffmpeg_command(ffmpeg_binary(), clip, tmp_path / "out", info, rungs, EncodeSettings())
    graph = args.index("-filter_complex") + 1
    assert args[graph].count(",thumbnail=25[thumb]") == 1
    args[graph] = args[graph].replace(",thumbnail=25[thumb]", ",showinfo,thumbnail=25[thumb]")
    args[args.index("-loglevel") + 1] = "info"
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    shown = re.findall(r"Parsed_showinfo.*\bn:\s*(\d+) .*\bpts_time:([\d.]+)", done.stderr)
    assert len(shown) == 25  # 25 fps: 270 frames after a tenth of the 12 s in, 25 of them taken
    assert float(shown[0][1]) >= thumbnail_at(info.duration) - 0.001
    assert jpeg_size((tmp_path / "out" / "thumbnail.jpg").read_bytes())[0] == 640
