"""HLS delivery over the real HTTP server: players decode it, and nothing else is ever readable."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from pathlib import Path

import pytest
from bson import ObjectId

from tests.transcoding.helpers import upload, wait_for_status
from transcode.ffmpeg import ffmpeg_binary

pytestmark = pytest.mark.slow


@pytest.fixture
def ready_video(api, staff_token, clips, db, io_loop):
    """A 360p clip with audio, transcoded: its id."""

    async def make() -> str:
        video_id = await upload(api, staff_token, clips["hd"])
        await wait_for_status(db, video_id, "ready")
        return video_id

    return io_loop.run_sync(make)


async def video_json(api, token, video_id):
    reply = await api.get(f"/api/videos/{video_id}/", token=token)
    assert reply.code == 200
    return reply.data


async def ffmpeg_decodes(url: str, headers: str | None = None) -> tuple[int, str]:
    """Run `ffmpeg -i URL -map 0 -f null -` without blocking the server's event loop."""
    args = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error"]
    if headers:
        args += ["-headers", headers]
    args += ["-i", url, "-map", "0", "-f", "null", "-"]
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    return proc.returncode, err.decode()


async def test_a_ready_video_carries_stream_urls_under_a_grant(api, user_token, ready_video):
    video = await video_json(api, user_token, ready_video)
    assert re.fullmatch(r"/api/stream/[\w.-]+/master\.m3u8", video["hls_url"])
    grant = video["hls_url"].split("/")[3]
    assert video["thumbnail_url"] == f"/api/stream/{grant}/thumbnail.jpg"
    assert [(r["height"], r["url"]) for r in video["renditions"]] == [
        (120, f"/api/stream/{grant}/120p/index.m3u8"),
        (360, f"/api/stream/{grant}/360p/index.m3u8"),
    ]


async def test_ffmpeg_decodes_every_rendition_from_the_hls_url_without_a_header(
    api, user_token, ready_video, http_server_client
):
    video = await video_json(api, user_token, ready_video)
    code, errors = await ffmpeg_decodes(http_server_client.get_url(video["hls_url"]))
    assert code == 0, errors
    assert errors.strip() == ""


async def test_ffmpeg_decodes_the_whole_ladder_from_the_dash_url_without_a_header(
    api, user_token, ready_video, http_server_client
):
    video = await video_json(api, user_token, ready_video)
    assert video["dash_url"] == video["hls_url"].replace("master.m3u8", "manifest.mpd")
    manifest = await api.get(video["dash_url"])
    assert manifest.headers["Content-Type"] == "application/dash+xml"
    assert manifest.body.startswith(b"<?xml") and b'contentType="audio"' in manifest.body
    code, errors = await ffmpeg_decodes(http_server_client.get_url(video["dash_url"]))
    assert code == 0, errors
    assert errors.strip() == ""


async def test_ffmpeg_decodes_the_course_spec_routes_with_the_token_header(
    api, user_token, ready_video, http_server_client
):
    for rung in ("120p", "360p", "480p"):  # 480p: a course-spec player's choice, served from 360p
        url = http_server_client.get_url(f"/api/video/{ready_video}/{rung}/index.m3u8")
        code, errors = await ffmpeg_decodes(url, headers=f"Authorization: Token {user_token}\r\n")
        assert code == 0, errors


async def test_course_spec_routes_need_the_token_and_take_a_trailing_slash(api, user_token, ready_video):
    assert (await api.get(f"/api/video/{ready_video}/360p/index.m3u8")).code == 401
    reply = await api.get(f"/api/video/{ready_video}/360p/seg_00001.m4s/", token=user_token)
    assert reply.code == 200
    assert reply.headers["Content-Type"] == "video/iso.segment"
    init = await api.get(f"/api/video/{ready_video}/360p/init.mp4", token=user_token)
    assert init.code == 200 and init.headers["Content-Type"] == "video/mp4"


async def test_files_have_their_mime_types_and_cache_rules(api, user_token, ready_video):
    video = await video_json(api, user_token, ready_video)
    base = video["hls_url"].rsplit("/", 1)[0]
    master = await api.get(video["hls_url"])
    assert master.code == 200
    assert master.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert "max-age=60" in master.headers["Cache-Control"]
    assert master.body.startswith(b"#EXTM3U")
    segment = await api.get(f"{base}/360p/seg_00001.m4s")
    assert segment.headers["Content-Type"] == "video/iso.segment"
    assert "immutable" in segment.headers["Cache-Control"]
    init = await api.get(f"{base}/audio/init.mp4")
    assert init.headers["Content-Type"] == "video/mp4"
    assert "immutable" in init.headers["Cache-Control"]
    thumbnail = await api.get(video["thumbnail_url"])
    assert thumbnail.headers["Content-Type"] == "image/jpeg"
    assert thumbnail.body[:3] == b"\xff\xd8\xff"


async def test_range_requests_answer_206_and_an_unsatisfiable_range_416(api, user_token, ready_video):
    video = await video_json(api, user_token, ready_video)
    segment = video["hls_url"].rsplit("/", 1)[0] + "/360p/seg_00001.m4s"
    whole = await api.get(segment)
    part = await api.get(segment, headers={"Range": "bytes=100-199"})
    assert part.code == 206
    assert part.body == whole.body[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(whole.body)}"
    assert (await api.get(segment, headers={"Range": "bytes=999999999-"})).code == 416


async def test_an_etag_answers_304_and_head_sends_no_body(api, user_token, ready_video):
    video = await video_json(api, user_token, ready_video)
    first = await api.get(video["hls_url"])
    etag = first.headers["ETag"]
    again = await api.get(video["hls_url"], headers={"If-None-Match": etag})
    assert again.code == 304
    head = await api.request("HEAD", video["hls_url"])
    assert head.code == 200
    assert head.body == b""
    assert int(head.headers["Content-Length"]) == len(first.body)


@pytest.mark.parametrize(
    "path",
    [
        "../source",
        "..%2Fsource",
        "%2e%2e/source",
        "%2e%2e%2f%2e%2e%2fconfig.yaml",
        "120p/../../source",
        "120p/%2e%2e/%2e%2e/source",
        "/etc/passwd",
        "%2Fetc%2Fpasswd",
        "120p/seg_00000.ts%00.jpg",
        "master.m3u8%00",
        "120p/",
        "source",
        "ffmpeg.log",
        "120p/seg_1.ts",
        "audio/../../source",
        "audio/seg_1.m4s",
        "120p/init.mp4%00",
        "audio/x/index.m3u8",
    ],
)
async def test_nothing_outside_the_ladder_is_ever_served(api, user_token, ready_video, path):
    video = await video_json(api, user_token, ready_video)
    base = video["hls_url"].rsplit("/", 1)[0]
    reply = await api.get(f"{base}/{path}")
    assert reply.code == 404
    assert reply.data == {"detail": "Not found."}


async def test_a_ladder_made_before_cmaf_still_plays_as_mpeg_ts_without_a_dash_url(
    api, user_token, ready_video, db, settings, clips, http_server_client, services
):
    """Ladders published before CMAF (MPEG-TS segments, audio in every rung) are served as they are."""
    old = f"videos/{ready_video}/hls-0-old"
    rung = Path(settings.media.root) / old / "120p"
    rung.mkdir(parents=True)
    subprocess.run(
        [
            ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-i", str(clips["hd"]),
            "-vf", "scale=214:120", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
            "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod", "-hls_segment_type", "mpegts",
            "-hls_segment_filename", str(rung / "seg_%05d.ts"), str(rung / "index.m3u8"),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    (rung.parent / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=214x120,"
        'CODECS="avc1.42c00c,mp4a.40.2"\n120p/index.m3u8\n'
    )
    await db.videos.update_one(
        {"_id": ObjectId(ready_video)},
        {"$set": {"hls_path": f"{old}/master.m3u8", "dash_path": None}, "$unset": {"storyboard_path": 1}},
    )
    services.catalogue.videos.invalidate()
    video = await video_json(api, user_token, ready_video)
    assert video["dash_url"] is None and video["hls_url"].endswith("/master.m3u8")
    segment = await api.get(video["hls_url"].rsplit("/", 1)[0] + "/120p/seg_00000.ts")
    assert segment.code == 200 and segment.headers["Content-Type"] == "video/mp2t"
    code, errors = await ffmpeg_decodes(http_server_client.get_url(video["hls_url"]))
    assert code == 0, errors


async def test_a_symlink_leading_out_of_the_folder_is_not_followed(
    api, user_token, ready_video, db, settings
):
    doc = await db.videos.find_one({"_id": ObjectId(ready_video)})
    folder = Path(settings.media.root) / Path(doc["hls_path"]).parent
    os.symlink("/etc/passwd", folder / "120p" / "seg_00099.ts")
    video = await video_json(api, user_token, ready_video)
    reply = await api.get(video["hls_url"].rsplit("/", 1)[0] + "/120p/seg_00099.ts")
    assert reply.code == 404


async def test_an_expired_or_forged_grant_is_403(api, user_token, ready_video, clock):
    video = await video_json(api, user_token, ready_video)
    grant = video["hls_url"].split("/")[3]
    forged = await api.get(f"/api/stream/{grant[:-3]}abc/master.m3u8")
    assert forged.code == 403
    assert forged.data == {"detail": "The stream link is invalid or has expired."}
    clock.advance(hours=6, seconds=1)
    assert (await api.get(video["hls_url"])).code == 403


async def test_a_grant_for_one_video_opens_nothing_of_another(
    api, user_token, staff_token, clips, db, ready_video
):
    other_id = await upload(api, staff_token, clips["small"], title="other")
    other = await wait_for_status(db, other_id, "ready")
    mine = await video_json(api, user_token, ready_video)
    base = mine["hls_url"].rsplit("/", 1)[0]
    other_folder = Path(other["hls_path"]).parent.name
    for path in (
        f"../../{other_id}/{other_folder}/master.m3u8",
        f"..%2F..%2F{other_id}%2F{other_folder}%2Fmaster.m3u8",
    ):
        assert (await api.get(f"{base}/{path}")).code == 404


async def test_a_grant_dies_with_its_user_deactivated_or_deleted(api, services, ready_video, db):
    from tests.conftest import make_token

    token = await make_token(services, "leaving@example.com")
    video = await video_json(api, token, ready_video)
    assert (await api.get(video["hls_url"])).code == 200
    await db.users.update_one({"email_lower": "leaving@example.com"}, {"$set": {"is_active": False}})
    assert (await api.get(video["hls_url"])).code == 403
    await db.users.delete_one({"email_lower": "leaving@example.com"})
    assert (await api.get(video["hls_url"])).code == 403


async def test_a_video_that_is_not_ready_has_no_stream_urls_and_its_paths_are_404(
    api, staff_token, db, ready_video, services
):
    await db.videos.update_one({"_id": ObjectId(ready_video)}, {"$set": {"status": "processing"}})
    services.catalogue.videos.invalidate()
    video = await video_json(api, staff_token, ready_video)
    assert (video["hls_url"], video["thumbnail_url"], video["renditions"]) == (None, None, [])
    assert (await api.get(f"/api/video/{ready_video}/360p/index.m3u8", token=staff_token)).code == 404
    grant = services.accounts.signer.dumps("stream-grant", {"v": ready_video, "u": "0" * 24})
    assert (await api.get(f"/api/stream/{grant}/master.m3u8")).code == 403  # unknown user first


async def test_accel_redirect_hands_the_file_to_nginx_after_checking_the_grant(
    api, user_token, ready_video, services, db
):
    services.settings.media.accel_redirect = "/protected-media/"
    video = await video_json(api, user_token, ready_video)
    reply = await api.get(video["hls_url"].rsplit("/", 1)[0] + "/360p/seg_00001.m4s")
    doc = await db.videos.find_one({"_id": ObjectId(ready_video)})
    folder = Path(doc["hls_path"]).parent
    assert reply.code == 200
    assert reply.headers["X-Accel-Redirect"] == f"/protected-media/{folder}/360p/seg_00001.m4s"
    assert reply.headers["Content-Type"] == "video/iso.segment"
    assert reply.body == b""
    assert (await api.get("/api/stream/forged/master.m3u8")).code == 403


async def test_any_origin_may_fetch_a_granted_stream_its_grant_is_the_key(api, user_token, ready_video):
    video = await video_json(api, user_token, ready_video)
    reply = await api.get(video["hls_url"], headers={"Origin": "http://localhost:4200"})
    assert reply.headers["Access-Control-Allow-Origin"] == "*"


async def test_stream_requests_are_logged_without_their_grant(api, user_token, ready_video, caplog):
    video = await video_json(api, user_token, ready_video)
    grant = video["hls_url"].split("/")[3]
    with caplog.at_level("INFO", logger="videoflix.access"):
        await api.get(video["hls_url"])
    assert "GET /api/stream/<grant>/master.m3u8 200" in caplog.text
    assert grant not in caplog.text


async def test_a_grant_is_reused_for_a_minute_then_renewed_and_both_play(api, user_token, ready_video, clock):
    first = (await video_json(api, user_token, ready_video))["hls_url"]
    assert (await video_json(api, user_token, ready_video))["hls_url"] == first
    clock.advance(seconds=61)
    renewed = (await video_json(api, user_token, ready_video))["hls_url"]
    assert renewed != first
    assert (await api.get(first)).code == (await api.get(renewed)).code == 200


async def test_a_client_leaving_mid_segment_is_no_crash(
    api, user_token, ready_video, http_server_client, caplog
):
    video = await video_json(api, user_token, ready_video)
    segment = video["hls_url"].rsplit("/", 1)[0] + "/360p/seg_00001.m4s"
    with caplog.at_level("ERROR"):
        for _ in range(5):
            _reader, writer = await asyncio.open_connection("127.0.0.1", http_server_client.get_http_port())
            writer.write(f"GET {segment} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await writer.drain()
            writer.close()
            await asyncio.sleep(0.05)
        assert (await api.get(segment)).code == 200
    assert "uncaught exception" not in caplog.text


async def test_a_course_spec_rung_playlist_brings_the_audio_of_a_cmaf_ladder(
    api, user_token, ready_video, http_server_client
):
    reply = await api.get(f"/api/video/{ready_video}/360p/index.m3u8", token=user_token)
    assert reply.code == 200
    text = reply.body.decode()
    assert text.count("#EXT-X-STREAM-INF:") == 1
    assert "TYPE=AUDIO" in text and "/api/stream/" in text  # under the grant: no header needed below
    url = http_server_client.get_url(f"/api/video/{ready_video}/360p/index.m3u8")
    args = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error"]
    args += [
        "-headers",
        f"Authorization: Token {user_token}\r\n",
        "-i",
        url,
        "-map",
        "0:a",
        "-f",
        "null",
        "-",
    ]
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, errors = await proc.communicate()
    assert proc.returncode == 0, errors.decode()  # -map 0:a fails when there is no sound
