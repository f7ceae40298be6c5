"""AV1 beside H.264 (issue 19.4), with the real FFmpeg: a follow-up job makes SVT-AV1 rungs on the same
segment boundaries, and the master and the MPD list them only once all of them are whole."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from bson import ObjectId

from services.av1 import worth_listing
from tests.media import make_clip, multipart
from tests.test_storage_s3 import bucket, moto, s3_media  # noqa: F401 (fixtures)
from tests.transcoding.helpers import upload, wait_for, wait_for_job, wait_for_status
from transcode.av1 import key_frame_times, segment_starts
from transcode.cmaf import Rendition, Track, read_fragment, read_init
from transcode.ffmpeg import ffmpeg_binary

pytestmark = pytest.mark.slow

SEGMENT_NAME = re.compile(r"^(seg_\d{5}\.m4s)$", re.MULTILINE)


@pytest.fixture
def run_types() -> tuple[str, ...]:
    return ("mail", "transcode", "publish", "av1")


@pytest.fixture
def settings_overrides():
    return {
        "transcode": {
            "workers": 1,
            "retry_base_s": 30,
            "max_attempts": 2,
            "progress_interval_s": 0.05,
            "preset": "ultrafast",
            "segment_s": 1,
            "av1": "off",  # each test turns it on when it wants the follow-up job
        },
        "jobs": {"poll_interval_s": 0.05, "lease_s": 60, "jitter": 0},
    }


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """3.2 s of 360p with sound: rungs 120p and 360p, segments of 1 s and a short last one."""
    return make_clip(tmp_path_factory.mktemp("av1") / "clip.mp4", "640x360", seconds=3.2)


def ladder(settings, doc) -> Path:
    return Path(settings.media.root) / Path(doc["hls_path"]).parent


def segments(folder: Path) -> list[str]:
    return SEGMENT_NAME.findall((folder / "index.m3u8").read_text())


def timeline_s(folder: Path) -> list[tuple[float, float]]:
    """Every segment's (start, duration) in seconds, from its own tfdt and trun."""
    scale = read_init(folder / "init.mp4").timescale
    return [(t / scale, d / scale) for t, d in (read_fragment(folder / name) for name in segments(folder))]


async def ready_without_av1(api, staff_token, clip, db) -> tuple[str, dict]:
    video_id = await upload(api, staff_token, clip)
    return video_id, await wait_for_status(db, video_id, "ready")


async def av1_listed(db, video_id: str, timeout: float = 120.0) -> dict:
    return await wait_for(db, video_id, lambda d: "av01" in (d.get("codecs") or []), timeout)


async def test_the_av1_job_lists_av1_rungs_aligned_with_the_h264_ones_only_once_it_is_done(
    api, staff_token, clip, db, services, settings
):
    video_id, doc = await ready_without_av1(api, staff_token, clip, db)
    folder = ladder(settings, doc)
    master = (folder / "master.m3u8").read_text()
    assert "av01" not in master and "av1-" not in master
    assert (folder / "manifest.mpd").read_text().count('contentType="video"') == 1
    assert await db.jobs.find_one({"key": f"av1:{video_id}"}) is None
    reply = await api.get(f"/api/videos/{video_id}/", token=staff_token)
    assert reply.data["codecs"] == ["avc1"]

    settings.transcode.av1 = "after"
    assert await services.av1.queue_av1(video_id)
    assert not await services.av1.queue_av1(video_id)  # idempotent: one job per ladder
    await wait_for_job(db, video_id, lambda j: j["state"] == "done", timeout=120, kind="av1")
    doc = await av1_listed(db, video_id)
    assert doc["hls_path"] == str(Path(doc["hls_path"]))  # the same ladder, now with AV1 beside H.264

    for height in (120, 360):
        h264, av1 = folder / f"{height}p", folder / f"av1-{height}p"
        assert read_init(av1 / "init.mp4").codecs.startswith("av01.0.")
        assert (read_init(av1 / "init.mp4").width, read_init(av1 / "init.mp4").height) == (
            read_init(h264 / "init.mp4").width,
            height,
        )
        assert len(segments(av1)) == len(segments(h264)) == 4
        frame = 1 / 25
        for (t1, d1), (t2, d2) in zip(timeline_s(h264), timeline_s(av1), strict=True):
            assert abs(t1 - t2) < frame / 2 and abs(d1 - d2) < frame / 2
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in (av1 / "index.m3u8").read_text()

    master = (folder / "master.m3u8").read_text()
    variants = re.findall(r"#EXT-X-STREAM-INF:(.*)\n(\S+)", master)
    assert [uri for _, uri in variants] == [
        "120p/index.m3u8",
        "360p/index.m3u8",
        "av1-120p/index.m3u8",
        "av1-360p/index.m3u8",
        "audio/index.m3u8",  # the audio-only variant stays last
    ]
    for attrs, uri in variants[2:4]:
        codec = read_init(folder / uri.split("/")[0] / "init.mp4").codecs
        assert f'CODECS="{codec},mp4a.40.2"' in attrs and 'AUDIO="aud"' in attrs
    mpd = (folder / "manifest.mpd").read_text()
    sets = re.findall(r"<AdaptationSet [^>]*contentType=\"video\".*?</AdaptationSet>", mpd, re.DOTALL)
    assert len(sets) == 2
    assert "avc1." in sets[0] and "av01" not in sets[0]
    assert 'initialization="av1-360p/init.mp4"' in sets[1] and "avc1" not in sets[1]
    reply = await api.get(f"/api/videos/{video_id}/", token=staff_token)
    assert reply.data["codecs"] == ["avc1", "av01"]
    played = await api.get(
        reply.data["hls_url"].replace("master.m3u8", "av1-360p/seg_00001.m4s"), token=staff_token
    )
    assert played.code == 200 and len(played.body) > 0


async def test_with_av1_after_the_publish_queues_the_av1_job_and_retranscode_queues_it_again(
    api, staff_token, clip, db, services, settings
):
    settings.transcode.av1 = "after"
    video_id = await upload(api, staff_token, clip)
    first = await av1_listed(db, video_id)
    assert (ladder(settings, first) / "av1-360p" / "init.mp4").is_file()

    reply = await api.post(f"/api/videos/{video_id}/retranscode/", token=staff_token)
    assert reply.code == 202
    again = await wait_for(
        db, video_id, lambda d: d["hls_path"] != first["hls_path"] and d.get("status") == "ready", 120
    )
    assert again["codecs"] == ["avc1"] or "av01" in again["codecs"]  # dropped, then listed again
    again = await av1_listed(db, video_id)
    assert again["hls_path"] != first["hls_path"] and not ladder(settings, first).exists()
    assert "av1-360p/index.m3u8" in (ladder(settings, again) / "master.m3u8").read_text()


async def test_a_failing_av1_encode_leaves_the_h264_ladder_playing_and_the_job_retries(
    api, staff_token, clip, db, services, settings, fake_ffmpeg
):
    video_id, doc = await ready_without_av1(api, staff_token, clip, db)
    master_before = (ladder(settings, doc) / "master.m3u8").read_text()
    fake_ffmpeg("fail")
    settings.transcode.av1 = "after"
    assert await services.av1.queue_av1(video_id)
    job = await wait_for_job(
        db, video_id, lambda j: j["state"] == "queued" and j["attempts"] == 1, timeout=60, kind="av1"
    )
    assert "FFmpeg failed" in job["last_error"]
    now = await db.videos.find_one({"_id": ObjectId(video_id)})
    assert now["status"] == "ready" and now["hls_path"] == doc["hls_path"] and now["codecs"] == ["avc1"]
    assert (ladder(settings, doc) / "master.m3u8").read_text() == master_before
    assert not list(ladder(settings, doc).glob("av1-*"))
    assert not list((ladder(settings, doc).parent).glob(".hls-tmp-av1-*"))  # its scratch is gone
    reply = await api.get(f"/api/videos/{video_id}/", token=staff_token)
    master = await api.get(reply.data["hls_url"], token=staff_token)
    assert master.code == 200 and "av01" not in master.body.decode()


async def test_an_av1_encode_that_stops_advancing_is_stopped_and_retried_with_a_sentence(
    api, staff_token, clip, db, services, settings, fake_ffmpeg
):
    video_id, _ = await ready_without_av1(api, staff_token, clip, db)
    fake_ffmpeg("stall")  # reports the same 0.3 s for ever
    settings.transcode.stall_s = 1.0
    settings.transcode.av1 = "after"
    assert await services.av1.queue_av1(video_id)
    job = await wait_for_job(
        db, video_id, lambda j: j["state"] == "queued" and j["attempts"] == 1, timeout=60, kind="av1"
    )
    assert job["last_error"] == "The AV1 encode made no progress for 1 s."
    now = await db.videos.find_one({"_id": ObjectId(video_id)})
    assert now["status"] == "ready" and now["codecs"] == ["avc1"]


async def test_subtitles_added_before_the_av1_rungs_stay_listed_beside_them(
    api, staff_token, clip, db, services, settings
):
    video_id, doc = await ready_without_av1(api, staff_token, clip, db)
    srt = "1\n00:00:00,500 --> 00:00:02,000\nHello\n"
    body, content_type = multipart({"language": "en", "label": "English"}, srt.encode(), filename="s.srt")
    added = await api.post(
        f"/api/videos/{video_id}/subtitles/",
        body=body,
        headers={"Content-Type": content_type},
        token=staff_token,
    )
    assert added.code == 201, added.data
    settings.transcode.av1 = "after"
    assert await services.av1.queue_av1(video_id)
    await av1_listed(db, video_id)
    master = (ladder(settings, doc) / "master.m3u8").read_text()
    assert "TYPE=SUBTITLES" in master and "av1-360p/index.m3u8" in master
    assert all('SUBTITLES="subs"' in line for line in master.splitlines() if "av01" in line)
    assert 'contentType="text"' in (ladder(settings, doc) / "manifest.mpd").read_text()


async def test_with_av1_off_nothing_is_queued_and_popular_waits_for_views(
    api, staff_token, clip, db, services, settings
):
    video_id, _ = await ready_without_av1(api, staff_token, clip, db)
    await asyncio.sleep(0.3)
    assert await db.jobs.find_one({"type": "av1"}) is None
    assert not await services.av1.queue_av1(video_id)  # off: nothing, whoever asks
    settings.transcode.av1 = "popular"
    settings.transcode.av1_min_views = 3
    assert not await services.av1.on_views(video_id, 2)
    assert await db.jobs.find_one({"type": "av1"}) is None
    assert await services.av1.on_views(video_id, 3)
    await wait_for_job(db, video_id, lambda j: j["state"] == "done", timeout=120, kind="av1")
    await av1_listed(db, video_id)


async def test_a_video_deleted_while_its_av1_job_waits_leaves_nothing_behind(
    api, staff_token, clip, db, services, settings
):
    video_id, _ = await ready_without_av1(api, staff_token, clip, db)
    services.queue.run_types.remove("av1")  # the job waits
    settings.transcode.av1 = "after"
    assert await services.av1.queue_av1(video_id)
    assert (await api.delete(f"/api/videos/{video_id}/", token=staff_token)).code == 204
    assert await db.jobs.find_one({"key": f"av1:{video_id}"}) is None
    assert not (Path(settings.media.root) / "videos" / video_id).exists()


def logging_ffmpeg(tmp_path: Path) -> tuple[Path, Path]:
    """The real FFmpeg reading its input at real time, each run logged as `h264` or `av1` (the audio
    rendition's FFmpegs, `-vn`, run beside the H.264 one, unlogged)."""
    runs, wrapper = tmp_path / "runs", tmp_path / "ffmpeg-logged"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" -vn "*) exec "{ffmpeg_binary()}" "$@";; esac\n'
        f'case "$*" in *libsvtav1*) echo av1 >> "{runs}";; *) echo h264 >> "{runs}";; esac\n'
        f'exec "{ffmpeg_binary()}" -readrate 1 "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper, runs


async def runs_logged(runs: Path, count: int, timeout: float = 60.0) -> list[str]:
    deadline = asyncio.get_running_loop().time() + timeout
    while len(lines := runs.read_text().split() if runs.exists() else []) < count:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"FFmpeg ran {lines}, not {count} times")
        await asyncio.sleep(0.05)
    return lines


async def test_an_av1_encode_makes_way_for_a_new_upload_and_runs_again_after_it(
    api, staff_token, clip, clips, db, settings, tmp_path
):
    wrapper, runs = logging_ffmpeg(tmp_path)
    settings.transcode.ffmpeg = str(wrapper)
    settings.transcode.av1 = "after"
    first = await upload(api, staff_token, clip)
    assert await runs_logged(runs, 2) == ["h264", "av1"]  # the AV1 pass of the first video runs

    second = await upload(api, staff_token, clips["small"], title="new upload")
    await wait_for_status(db, second, "ready")
    assert (await runs_logged(runs, 3))[:3] == ["h264", "av1", "h264"]
    waiting = await db.videos.find_one({"_id": ObjectId(first)})
    assert waiting["codecs"] == ["avc1"]  # its AV1 pass stopped for the upload

    await av1_listed(db, first)
    job = await wait_for_job(db, first, lambda j: j["state"] == "done", kind="av1")
    assert job["attempts"] == 1 and job["last_error"] is None  # the yield cost no attempt
    assert runs.read_text().split()[3:].count("av1") >= 1


class TestObjectStorage:
    @pytest.fixture
    def settings_overrides(self, bucket, moto):
        return {
            **s3_media(bucket[0], moto.url),
            "transcode": {
                "workers": 1,
                "preset": "ultrafast",
                "segment_s": 1,
                "progress_interval_s": 0.05,
                "av1": "after",
            },
            "jobs": {"poll_interval_s": 0.05, "jitter": 0},
        }

    async def test_the_av1_rungs_are_stored_in_the_bucket_before_the_manifests_list_them(
        self, api, staff_token, clip, db, bucket
    ):
        video_id = await upload(api, staff_token, clip)
        doc = await av1_listed(db, video_id)
        name, client = bucket
        prefix = doc["hls_path"].rsplit("/", 1)[0] + "/"
        stored = {o["Key"] for o in client.list_objects_v2(Bucket=name, Prefix=prefix).get("Contents", [])}
        for rung in ("av1-120p", "av1-360p"):
            assert {f"{prefix}{rung}/init.mp4", f"{prefix}{rung}/index.m3u8"} <= stored
            assert f"{prefix}{rung}/seg_00004.m4s" in stored
        master = client.get_object(Bucket=name, Key=doc["hls_path"])["Body"].read().decode()
        assert "av1-360p/index.m3u8" in master
        mpd = client.get_object(Bucket=name, Key=doc["dash_path"])["Body"].read().decode()
        assert mpd.count('contentType="video"') == 2
        reply = await api.get(f"/api/videos/{video_id}/", token=staff_token)
        served = await api.get(reply.data["hls_url"], token=staff_token)
        assert served.code == 200 and "av1-360p/index.m3u8" in served.body.decode()


async def test_a_ladder_made_before_cmaf_never_gets_av1(db, services, settings):
    settings.transcode.av1 = "after"
    video_id = ObjectId()
    await db.videos.insert_one(
        {
            "_id": video_id,
            "title": "MPEG-TS ladder",
            "status": "ready",
            "source": "videos/x/source",
            "hls_path": f"videos/{video_id}/hls-1-abc/master.m3u8",
            "dash_path": None,
            "renditions": [{"height": 120, "width": 214, "bandwidth": 300000}],
        }
    )
    assert not await services.av1.queue_av1(video_id)
    assert not await services.av1.queue_av1(str(ObjectId()))  # no such video: nothing either
    assert await db.jobs.find_one({"type": "av1"}) is None


def test_the_av1_key_frames_fall_half_a_frame_before_each_h264_segment_start():
    playlist = (
        "#EXTINF:4.000000,\nseg_00001.m4s\n#EXTINF:3.966667,\nseg_00002.m4s\n#EXTINF:2.5,\nseg_00003.m4s\n"
    )
    starts = segment_starts(playlist)
    assert starts == [4.0, pytest.approx(7.966667)]
    assert key_frame_times(tuple(starts), 30.0) == "3.983333,7.950000"
    assert key_frame_times((), 30.0) == "0"


def test_an_av1_rung_larger_than_its_h264_rung_is_not_listed():
    def rendition(name: str, codecs: str, height: int, average: int) -> Rendition:
        return Rendition(name, Track("vide", 15360, codecs, height * 16 // 9, height), average_bps=average)

    h264 = [rendition("360p", "avc1.64001e", 360, 500_000), rendition("720p", "avc1.64001f", 720, 500_000)]
    smaller = rendition("av1-360p", "av01.0.01M.08", 360, 300_000)
    larger = rendition("av1-720p", "av01.0.05M.08", 720, 650_000)  # flat animation: x264 is cheap there
    assert worth_listing([smaller, larger], h264) == [smaller]
    assert worth_listing([larger], h264) == []
