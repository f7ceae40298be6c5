"""Subtitles and chapters over the real HTTP server, on a ladder the real FFmpeg made: uploads, the
HLS SUBTITLES rendition aligned to the video's segments, the MPD's text sets, and nothing re-encoded."""

from __future__ import annotations

import asyncio
import hashlib
import re
import struct

import pytest
from bson import ObjectId

from tests.media import make_clip, multipart
from tests.transcoding.helpers import upload, wait_for, wait_for_status
from transcode.cmaf import boxes

pytestmark = pytest.mark.slow

SRT = (
    "1\n00:00:00,500 --> 00:00:00,900\nFirst words\n\n"
    "2\n00:00:01,250 --> 00:00:02,100\nAcross a boundary\n\n"
    "3\n00:00:02,750 --> 00:00:09,000\n<script>alert(1)</script>Last <b>one</b>\n"
)
VTT = "WEBVTT\n\n00:00.300 --> 00:01.000\nHallo\n\n00:02.000 --> 00:02.500\n<i>Welt</i>\n"
MEDIA = re.compile(r"^#EXT-X-MEDIA:TYPE=SUBTITLES,(.*)$", re.M)
EXTINF = re.compile(r"#EXTINF:([\d.]+),\s*\n(\S+)")
TIME = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3})$")


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory):
    """A 3.4 s clip: with 1 s segments, a ladder of four."""
    return make_clip(tmp_path_factory.mktemp("subs") / "long.mp4", "320x240", seconds=3.4)


@pytest.fixture
def ready_video(api, staff_token, long_clip, db, io_loop):
    async def make() -> str:
        video_id = await upload(api, staff_token, long_clip)
        await wait_for_status(db, video_id, "ready")
        return video_id

    return io_loop.run_sync(make)


async def add(api, token, video_id, text, language="en", label="English", default=None, name="s.srt"):
    fields = {"language": language, "label": label}
    if default is not None:
        fields["default"] = default
    body, content_type = multipart(fields, text.encode() if isinstance(text, str) else text, filename=name)
    return await api.post(
        f"/api/videos/{video_id}/subtitles/", body=body, headers={"Content-Type": content_type}, token=token
    )


async def video_json(api, token, video_id):
    reply = await api.get(f"/api/videos/{video_id}/", token=token)
    assert reply.code == 200
    return reply.data


def seconds(match: tuple[str, str, str, str]) -> float:
    hours, minutes, secs, millis = (int(part) for part in match)
    return hours * 3600 + minutes * 60 + secs + millis / 1000


def decode_time(init: bytes, segment: bytes) -> tuple[int, int]:
    """(tfdt, timescale) as a player reads them from the served fragment."""
    timescale = tfdt = 0
    for kind, start, _ in boxes(init):
        if kind == b"mdhd":
            at = start + (20 if init[start] else 12)
            timescale = struct.unpack(">I", init[at : at + 4])[0]
    for kind, start, _ in boxes(segment):
        if kind == b"tfdt":
            wide = segment[start] == 1
            tfdt = struct.unpack(">Q" if wide else ">I", segment[start + 4 : start + (12 if wide else 8)])[0]
            break
    return tfdt, timescale


async def test_staff_add_an_srt_and_viewers_find_it_in_the_video(api, staff_token, user_token, ready_video):
    reply = await add(api, staff_token, ready_video, SRT, language="EN-gb", label="English", default="true")
    assert reply.code == 201, reply.data
    track = reply.data
    assert (track["language"], track["label"], track["default"]) == ("en-GB", "English", True)
    video = await video_json(api, user_token, ready_video)
    [shown] = video["subtitles"]
    assert shown["id"] == track["id"] and shown["url"].endswith(f"/subs-{track['id']}/subtitles.vtt")
    assert shown["url"].startswith(video["hls_url"].rsplit("/", 1)[0])  # under the viewer's grant
    whole = await api.get(shown["url"])
    assert whole.code == 200 and whole.headers["Content-Type"].startswith("text/vtt")
    text = whole.body.decode()
    assert text.startswith("WEBVTT") and "00:00:01.250 --> 00:00:02.100\nAcross a boundary" in text
    # cut at the video's end; the script is text now, never markup
    assert "--> 00:00:03.400\nalert(1)Last <b>one</b>" in text and "<script" not in text
    listed = await api.get(f"/api/videos/{ready_video}/subtitles/", token=user_token)
    assert listed.code == 200 and [t["id"] for t in listed.data] == [track["id"]]


async def test_the_same_language_again_replaces_the_track_and_one_track_is_default(
    api, staff_token, user_token, ready_video
):
    first = await add(api, staff_token, ready_video, SRT, default="true")
    german = await add(api, staff_token, ready_video, VTT, language="de", label="Deutsch", name="d.vtt")
    again = await add(api, staff_token, ready_video, VTT, language="en", label="English", default="1")
    assert first.code == german.code == again.code == 201
    video = await video_json(api, user_token, ready_video)
    assert [(t["language"], t["default"]) for t in video["subtitles"]] == [("de", False), ("en", True)]
    assert again.data["id"] != first.data["id"]
    gone = await api.get(first.data["url"].replace(again.data["id"], first.data["id"]))
    assert gone.code == 404
    made_default = await add(api, staff_token, ready_video, VTT, language="de", label="D", default="yes")
    video = await video_json(api, user_token, ready_video)
    defaults = {t["language"]: t["default"] for t in video["subtitles"]}
    assert made_default.code == 201 and defaults == {"en": False, "de": True}


async def test_the_master_offers_a_subtitles_group_that_every_variant_names(
    api, staff_token, user_token, ready_video
):
    await add(api, staff_token, ready_video, SRT, default="true")
    await add(api, staff_token, ready_video, VTT, language="de", label="Deutsch")
    video = await video_json(api, user_token, ready_video)
    master = (await api.get(video["hls_url"])).body.decode()
    media = MEDIA.findall(master)
    assert len(media) == 2
    assert 'GROUP-ID="subs",LANGUAGE="en",NAME="English",DEFAULT=YES,AUTOSELECT=YES,FORCED=NO' in media[0]
    variants = [line for line in master.splitlines() if line.startswith("#EXT-X-STREAM-INF:")]
    assert variants and all(',SUBTITLES="subs"' in line for line in variants)
    base = video["hls_url"].rsplit("/", 1)[0]
    uri = re.search(r'URI="([^"]+)"', media[1]).group(1)
    playlist = await api.get(f"{base}/{uri}")
    assert playlist.code == 200 and b"#EXT-X-ENDLIST" in playlist.body


async def test_each_subtitle_segment_shows_its_cues_at_the_videos_time_to_the_millisecond(
    api, staff_token, user_token, ready_video
):
    """hls.js shows a cue at LOCAL + (MPEGTS - initPTS) / 90000, initPTS being the first video
    fragment's tfdt; the subtitle segments must cover the same windows as the video's segments."""
    track = (await add(api, staff_token, ready_video, SRT)).data
    video = await video_json(api, user_token, ready_video)
    base = video["hls_url"].rsplit("/", 1)[0]
    rung = video["renditions"][0]["url"]
    video_playlist = (await api.get(rung)).body.decode()
    folder = rung.rsplit("/", 1)[0]
    init = (await api.get(f"{folder}/init.mp4")).body
    starts = []
    for _, name in EXTINF.findall(video_playlist):
        starts.append(decode_time(init, (await api.get(f"{folder}/{name}")).body))
    first_tfdt, timescale = starts[0]
    init_pts = first_tfdt / timescale

    subs = (await api.get(f"{base}/subs-{track['id']}/index.m3u8")).body.decode()
    segments = EXTINF.findall(subs)
    assert len(segments) == len(starts) >= 3
    at, shown = 0.0, {}
    for (duration, name), (tfdt, _) in zip(segments, starts, strict=True):
        assert abs(at - (tfdt - first_tfdt) / timescale) < 0.001  # the same window as the video's
        text = (await api.get(f"{base}/subs-{track['id']}/{name}")).body.decode()
        mpegts = int(re.search(r"X-TIMESTAMP-MAP=MPEGTS:(\d+),LOCAL:00:00:00.000", text).group(1))
        for first, last, cue in re.findall(r"^(\S+) --> (\S+)\n(.+)$", text, re.M):
            offset = mpegts / 90000 - init_pts
            start, end = (seconds(TIME.match(t).groups()) + offset for t in (first, last))
            assert start < at + float(duration) and end > at  # the cue falls in the segment's window
            shown.setdefault(cue, set()).add(round(start, 3))
        at += float(duration)
    assert shown["First words"] == {0.5}
    assert shown["Across a boundary"] == {1.25}  # in two segments, at one time
    assert shown["alert(1)Last <b>one</b>"] == {2.75}


async def test_the_mpd_lists_each_track_as_a_text_adaptation_set(api, staff_token, user_token, ready_video):
    track = (await add(api, staff_token, ready_video, VTT, language="de", label="Deutsch")).data
    video = await video_json(api, user_token, ready_video)
    mpd = (await api.get(video["dash_url"])).body.decode()
    assert 'contentType="text" mimeType="text/vtt" lang="de"' in mpd
    base_url = re.search(r"<BaseURL>([^<]+)</BaseURL>", mpd).group(1)
    assert base_url == f"subs-{track['id']}/subtitles.vtt"
    served = await api.get(video["dash_url"].rsplit("/", 1)[0] + "/" + base_url)
    assert served.code == 200 and b"<i>Welt</i>" in served.body


async def test_adding_and_removing_subtitles_leaves_every_video_segment_as_it_was(
    api, staff_token, user_token, ready_video, settings
):
    from pathlib import Path

    root = Path(settings.media.root) / "videos" / ready_video

    def media_bytes() -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*")
            if p.suffix in (".m4s", ".mp4")
            or (p.name == "index.m3u8" and not p.parent.name.startswith("subs-"))
        }

    before = media_bytes()
    track = (await add(api, staff_token, ready_video, SRT)).data
    assert media_bytes() == before
    removed = await api.delete(f"/api/videos/{ready_video}/subtitles/{track['id']}/", token=staff_token)
    assert removed.code == 204 and media_bytes() == before
    video = await video_json(api, user_token, ready_video)
    master = (await api.get(video["hls_url"])).body.decode()
    mpd = (await api.get(video["dash_url"])).body.decode()
    assert video["subtitles"] == [] and "SUBTITLES" not in master and 'contentType="text"' not in mpd
    assert {p.name for p in root.rglob("*.vtt")} <= {"storyboard.vtt"}  # the track's files are gone


async def test_a_broken_file_answers_400_naming_its_line(api, staff_token, ready_video):
    broken = "1\n00:00:01,000 --> 00:00:02,000\nfine\n\n2\n00:00:03,000 -> 00:00:04,000\nbad\n"
    reply = await add(api, staff_token, ready_video, broken)
    assert reply.code == 400 and reply.data["file"][0].startswith("Line 6: expected the timing of cue 2")
    binary = await add(api, staff_token, ready_video, b"\x00\x01\x02PK", name="x.srt")
    assert binary.code == 400 and "binary" in binary.data["file"][0]


async def test_what_staff_send_is_checked(api, staff_token, user_token, ready_video):
    bad_language = await add(api, staff_token, ready_video, SRT, language="english!")
    assert bad_language.code == 400 and "BCP 47" in bad_language.data["language"][0]
    bad_default = await add(api, staff_token, ready_video, SRT, default="maybe")
    assert bad_default.code == 400 and "default" in bad_default.data
    body, content_type = multipart({"language": "en"})
    no_file = await api.post(
        f"/api/videos/{ready_video}/subtitles/",
        body=body,
        headers={"Content-Type": content_type},
        token=staff_token,
    )
    assert no_file.code == 400 and "file" in no_file.data
    viewer = await add(api, user_token, ready_video, SRT)
    assert viewer.code == 403
    unknown = await add(api, staff_token, "0" * 24, SRT)
    assert unknown.code == 404
    not_mine = await api.delete(f"/api/videos/{ready_video}/subtitles/{'1' * 24}/", token=staff_token)
    assert not_mine.code == 404
    viewer_delete = await api.delete(f"/api/videos/{ready_video}/subtitles/{'1' * 24}/", token=user_token)
    assert viewer_delete.code == 403


async def test_a_file_over_the_limit_answers_413(api, staff_token, ready_video, settings):
    settings.media.max_subtitle_kb = 4
    big = "1\n00:00:01,000 --> 00:00:02,000\n" + "x" * 5000 + "\n"
    reply = await add(api, staff_token, ready_video, big)
    assert reply.code == 413 and "4 KiB" in reply.data["detail"]
    huge = await api.post(
        f"/api/videos/{ready_video}/subtitles/",
        body=b"x" * (40 * 1024),
        headers={"Content-Type": "multipart/form-data; boundary=x"},
        token=staff_token,
    )
    assert huge.code == 413


async def test_chapters_are_json_in_the_video_and_a_webvtt_file(api, staff_token, user_token, ready_video):
    chapters = [{"start": 0, "title": "Intro"}, {"start": 1.5, "title": "The <b>middle</b>"}]
    reply = await api.put(f"/api/videos/{ready_video}/chapters/", chapters, token=staff_token)
    assert reply.code == 200, reply.data
    video = await video_json(api, user_token, ready_video)
    assert video["chapters"] == chapters
    text = (await api.get(video["chapters_url"])).body.decode()
    assert "00:00:00.000 --> 00:00:01.500\nIntro" in text
    assert "00:00:01.500 --> 00:00:03.400\nThe &lt;b&gt;middle&lt;/b&gt;" in text
    cleared = await api.put(f"/api/videos/{ready_video}/chapters/", [], token=staff_token)
    assert cleared.code == 200 and cleared.data["chapters"] == [] and cleared.data["chapters_url"] is None
    assert (await api.get(video["chapters_url"])).body == b"WEBVTT\n"  # a URL given out earlier


async def test_chapters_that_make_no_sense_answer_400(api, staff_token, user_token, ready_video, settings):
    url = f"/api/videos/{ready_video}/chapters/"
    for body, field in [
        ([{"start": 2, "title": "b"}, {"start": 1, "title": "a"}], "chapters"),
        ([{"start": 1, "title": "a"}, {"start": 1, "title": "b"}], "chapters"),
        ([{"start": 99, "title": "after the end"}], "chapters"),
        ([{"start": 0, "title": "   "}], "chapters"),
        ([{"start": -1, "title": "a"}], "chapters"),
        ([{"start": 0, "title": "x" * 201}], "chapters"),
        ([{"start": "0", "title": "a"}], "chapters"),
        ([{"start": 0}], "chapters"),
        ({"start": 0, "title": "a"}, "detail"),
    ]:
        reply = await api.put(url, body, token=staff_token)
        assert reply.code == 400 and field in reply.data, (body, reply.data)
    settings.media.max_chapters = 2
    many = [{"start": n, "title": str(n)} for n in range(3)]
    reply = await api.put(url, many, token=staff_token)
    assert reply.code == 400 and "At most 2 chapters." in reply.data["chapters"]
    assert (await api.put(url, [], token=user_token)).code == 403
    assert (await api.put("/api/videos/" + "0" * 24 + "/chapters/", [], token=staff_token)).code == 404


async def test_a_retranscoded_video_keeps_its_subtitles_and_chapters(
    api, staff_token, user_token, ready_video, db
):
    track = (await add(api, staff_token, ready_video, SRT, default="true")).data
    chapters = [{"start": 1, "title": "One"}]
    assert (await api.put(f"/api/videos/{ready_video}/chapters/", chapters, token=staff_token)).code == 200
    old_ladder = (await db.videos.find_one({"_id": ObjectId(ready_video)}))["hls_path"]
    assert (await api.post(f"/api/videos/{ready_video}/retranscode/", token=staff_token)).code == 202
    await wait_for(db, ready_video, lambda doc: doc["status"] == "ready" and doc["hls_path"] != old_ladder)
    video = await video_json(api, user_token, ready_video)
    assert [t["id"] for t in video["subtitles"]] == [track["id"]] and video["chapters"] == chapters
    listed = f'URI="subs-{track["id"]}/index.m3u8"'
    for _ in range(100):  # the publish job puts the tracks in just after the new ladder is named
        master = (await api.get(video["hls_url"])).body.decode()
        if listed in master:
            break
        await asyncio.sleep(0.05)
    assert listed in master and ',SUBTITLES="subs"' in master
    whole = await api.get(video["subtitles"][0]["url"])
    assert whole.code == 200 and b"First words" in whole.body
    served = await api.get(video["chapters_url"])
    assert served.code == 200 and b"One" in served.body
