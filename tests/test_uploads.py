"""Staff uploads: streamed to disk, probed, and nothing left behind when anything goes wrong."""

from __future__ import annotations

import asyncio
import struct
import subprocess
from pathlib import Path

import psutil
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from tests.media import make_image, multipart
from transcode.ffmpeg import ffmpeg_binary

MIB = 1024 * 1024


def stored_files(settings) -> list[Path]:
    root = Path(settings.media.root) / "videos"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def upload(api, token, fields=None, file=None, **kw):
    body, content_type = multipart({"title": "My clip", **(fields or {})}, file, **kw)
    return await api.post("/api/videos/", body=body, headers={"Content-Type": content_type}, token=token)


async def test_a_staff_upload_answers_201_pending_with_a_job_and_the_file_on_disk(
    api, staff_token, clips, settings, db
):
    reply = await upload(api, staff_token, {"description": "Test pattern"}, clips["hd"].read_bytes())
    assert reply.code == 201
    video = reply.data
    assert (video["title"], video["description"], video["status"]) == ("My clip", "Test pattern", "pending")
    assert (video["width"], video["height"]) == (640, 360)
    assert video["duration"] == pytest.approx(1.0, abs=0.1)
    assert video["transcode_progress"] == 0
    [stored] = stored_files(settings)
    assert stored.read_bytes() == clips["hd"].read_bytes()
    assert stored.parent.name == video["id"]
    job = await db.jobs.find_one({"type": "transcode"})
    assert str(job["payload"]["video_id"]) == video["id"]
    assert job["state"] == "queued"


async def test_an_upload_can_name_its_category(api, staff_token, clips):
    await api.post("/api/categories/", {"name": "Drama"}, token=staff_token)
    reply = await upload(api, staff_token, {"category": "drama"}, clips["small"].read_bytes())
    assert reply.code == 201
    assert reply.data["category"] is not None


async def test_an_upload_with_an_unknown_category_is_refused_and_leaves_nothing(
    api, staff_token, clips, settings, db
):
    reply = await upload(api, staff_token, {"category": "nope"}, clips["small"].read_bytes())
    assert reply.code == 400
    assert "category" in reply.data
    assert stored_files(settings) == []
    assert await db.videos.count_documents({}) == 0


async def test_users_cannot_upload_and_nothing_is_written(api, user_token, clips, settings):
    reply = await upload(api, user_token, file=clips["small"].read_bytes())
    assert reply.code == 403
    assert stored_files(settings) == []


async def test_an_upload_without_a_token_is_401(api, clips, settings):
    assert (await upload(api, None, file=clips["small"].read_bytes())).code == 401
    assert stored_files(settings) == []


async def test_an_empty_file_is_refused(api, staff_token, settings, db):
    reply = await upload(api, staff_token, file=b"")
    assert reply.code == 400
    assert reply.data == {"file": ["The submitted file is empty."]}
    assert stored_files(settings) == [] and await db.videos.count_documents({}) == 0


async def test_a_file_that_is_not_a_video_is_refused_by_probing_not_by_name(api, staff_token, settings, db):
    reply = await upload(api, staff_token, file=b"just some text, " * 1000, filename="movie.mp4")
    assert reply.code == 400
    assert "file" in reply.data
    assert "Upload a video file." in reply.data["file"][0]
    assert stored_files(settings) == [] and await db.videos.count_documents({}) == 0


async def test_a_still_image_is_refused_as_a_video(api, staff_token, settings, db, tmp_path):
    image = make_image(tmp_path / "picture.png").read_bytes()
    reply = await upload(api, staff_token, file=image, filename="clip.mp4")
    assert reply.code == 400
    assert reply.data == {"file": ["The file is a still image, not a video. Upload a video file."]}
    assert stored_files(settings) == [] and await db.videos.count_documents({}) == 0


async def test_an_audio_only_file_is_refused(api, staff_token, tmp_path):
    audio = tmp_path / "tone.m4a"
    subprocess.run(
        [
            ffmpeg_binary(),
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=duration=1",
            "-c:a",
            "aac",
            str(audio),
        ],
        check=True,
    )
    reply = await upload(api, staff_token, file=audio.read_bytes(), filename="tone.m4a")
    assert reply.code == 400
    assert reply.data["file"][0].startswith("The file has no video stream.")


async def test_an_upload_without_a_file_part_is_refused(api, staff_token):
    reply = await upload(api, staff_token)
    assert reply.code == 400
    assert reply.data == {"file": ["No file was submitted."]}


async def test_an_upload_without_a_title_is_refused_and_leaves_nothing(api, staff_token, clips, settings):
    body, content_type = multipart({}, clips["small"].read_bytes())
    reply = await api.post(
        "/api/videos/", body=body, headers={"Content-Type": content_type}, token=staff_token
    )
    assert reply.code == 400
    assert reply.data == {"title": ["This field is required."]}
    assert stored_files(settings) == []


async def test_an_upload_that_is_not_multipart_is_415(api, staff_token):
    reply = await api.post("/api/videos/", {"title": "x"}, token=staff_token)
    assert reply.code == 415


async def test_malformed_multipart_is_400(api, staff_token, settings):
    reply = await api.post(
        "/api/videos/",
        body=b"garbage without boundaries",
        headers={"Content-Type": "multipart/form-data; boundary=abc"},
        token=staff_token,
    )
    assert reply.code == 400
    assert stored_files(settings) == []


@pytest.fixture
def settings_overrides():
    return {"media": {"max_upload_mb": 1}}


async def test_an_upload_declared_over_the_limit_is_413_before_it_is_read(api, staff_token, settings):
    reply = await upload(api, staff_token, file=b"\0" * (3 * MIB))
    assert reply.code == 413
    assert "1 MB" in reply.data["detail"]
    assert stored_files(settings) == []


async def test_a_chunked_upload_over_the_limit_is_413_while_streaming(
    http_server_client, staff_token, settings, db
):
    body, content_type = multipart({"title": "big"}, b"\0" * (4 * MIB))

    async def producer(write):
        for start in range(0, len(body), 64 * 1024):
            await write(body[start : start + 64 * 1024])

    url = http_server_client.get_url("/api/videos/")
    request = HTTPRequest(
        url,
        method="POST",
        body_producer=producer,
        request_timeout=30,
        headers={"Content-Type": content_type, "Authorization": f"Token {staff_token}"},
    )
    client = AsyncHTTPClient(force_instance=True)
    try:
        response = await client.fetch(request, raise_error=False)
    finally:
        client.close()
    assert response.code == 413
    assert b"larger than the limit" in response.body
    await asyncio.sleep(0.1)
    assert stored_files(settings) == []
    assert await db.videos.count_documents({}) == 0


async def test_an_upload_cut_off_mid_stream_leaves_no_file_and_no_document_and_is_a_client_abort(
    http_server_client, staff_token, settings, db, clips, caplog
):
    caplog.set_level("INFO")
    body, content_type = multipart({"title": "cut"}, b"\0" * (512 * 1024))
    port = http_server_client.get_http_port()
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /api/videos/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Authorization: Token {staff_token}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    writer.write(head + body[: len(body) // 2])
    await writer.drain()
    for _ in range(50):  # the server has begun writing the file
        if stored_files(settings):
            break
        await asyncio.sleep(0.02)
    writer.close()
    await writer.wait_closed()
    for _ in range(100):
        if not stored_files(settings):
            break
        await asyncio.sleep(0.02)
    assert stored_files(settings) == []
    assert await db.videos.count_documents({}) == 0
    assert "POST /api/videos/: the client went away after" in caplog.text
    assert "POST /api/videos/ 499" in caplog.text
    assert not [record for record in caplog.records if record.levelname in ("ERROR", "CRITICAL")]


async def test_a_full_disk_is_a_clear_507(api, staff_token, clips, services, settings):
    services.settings.media.min_free_mb = 10**9  # more than any disk has
    reply = await upload(api, staff_token, file=clips["small"].read_bytes())
    assert reply.code == 507
    assert "disk space" in reply.data["detail"]
    assert stored_files(settings) == []


def padded_mp4(clip: Path, target: Path, total_bytes: int) -> int:
    """The clip with a trailing MP4 'free' box: a valid video of about total_bytes."""
    subprocess.run(
        [
            ffmpeg_binary(),
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(clip),
            "-c",
            "copy",
            "-movflags",
            "+faststart",
            str(target),
        ],
        check=True,
    )
    head = target.read_bytes()
    padding = total_bytes - len(head)
    target.write_bytes(head + struct.pack(">I", padding) + b"free")
    return padding - 8


@pytest.mark.slow
async def test_a_200_mb_upload_streams_through_the_real_server_with_flat_memory(
    http_server_client, staff_token, clips, tmp_path, services, db
):
    services.settings.media.max_upload_mb = 400
    prefix = tmp_path / "prefix.mp4"
    zeros = padded_mp4(clips["small"], prefix, 200 * MIB)
    fields, content_type = multipart({"title": "big one"})
    boundary = content_type.split("boundary=")[1]
    body_head = fields[: -len(f"--{boundary}--\r\n")]
    file_head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode() + prefix.read_bytes()
    file_tail = f"\r\n--{boundary}--\r\n".encode()
    length = len(body_head) + len(file_head) + zeros + len(file_tail)
    chunk = b"\0" * MIB

    async def producer(write):
        await write(body_head + file_head)
        left = zeros
        while left:
            piece = chunk if left >= MIB else chunk[:left]
            await write(piece)
            left -= len(piece)
        await write(file_tail)

    process = psutil.Process()
    before = process.memory_info().rss
    request = HTTPRequest(
        http_server_client.get_url("/api/videos/"),
        method="POST",
        body_producer=producer,
        request_timeout=120,
        headers={
            "Content-Type": content_type,
            "Content-Length": str(length),
            "Authorization": f"Token {staff_token}",
        },
    )
    client = AsyncHTTPClient(force_instance=True)
    try:
        response = await client.fetch(request, raise_error=False)
    finally:
        client.close()
    growth = process.memory_info().rss - before
    assert response.code == 201, response.body
    assert growth < 50 * MIB, f"RSS grew by {growth / MIB:.0f} MB"
    doc = await db.videos.find_one({})
    source = Path(services.media.resolve(doc["source"]))
    assert source.stat().st_size == len(prefix.read_bytes()) + zeros
