"""Resumable staff uploads (tus 1.0.0) at /api/uploads/, over the real server; tuspy is the real client."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from bson import ObjectId
from tusclient.client import TusClient

from services.uploads import UploadExpiry
from tests.conftest import make_token

MIB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"


def metadata(**pairs: str) -> str:
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in pairs.items())


async def create(api, token, length, meta=None, **headers):
    sent = {**TUS, "Upload-Length": str(length), **headers}
    sent["Upload-Metadata"] = metadata(title="My clip") if meta is None else meta
    return await api.post("/api/uploads/", body=b"", headers=sent, token=token)


def path_of(location: str) -> str:
    return urlsplit(location).path


async def patch(api, token, where, offset, data, **headers):
    sent = {**TUS, "Content-Type": OCTETS, "Upload-Offset": str(offset), **headers}
    return await api.patch(where, body=data, headers=sent, token=token)


async def head(api, token, where):
    return await api.request("HEAD", where, headers=dict(TUS), token=token)


def parts(settings) -> list[Path]:
    folder = Path(settings.media.root) / "uploads"
    return sorted(folder.glob("*.part")) if folder.exists() else []


def sources(settings) -> list[Path]:
    root = Path(settings.media.root) / "videos"
    return sorted(root.glob("*/source")) if root.exists() else []


def sha1_header(data: bytes) -> str:
    return "sha1 " + base64.b64encode(hashlib.sha1(data).digest()).decode()


@pytest.fixture
def other_staff_token(services, io_loop) -> str:
    return io_loop.run_sync(lambda: make_token(services, "other-staff@example.com", staff=True))


# --- discovery and creation -----------------------------------------------------------------------


async def test_options_tells_a_client_the_version_extensions_size_limit_and_checksum(api, settings):
    reply = await api.request("OPTIONS", "/api/uploads/")
    assert reply.code == 204
    assert reply.headers["Tus-Resumable"] == "1.0.0"
    assert reply.headers["Tus-Version"] == "1.0.0"
    assert reply.headers["Tus-Extension"] == "creation,termination,expiration,checksum"
    assert reply.headers["Tus-Max-Size"] == str(settings.media.max_upload_mb * MIB)
    assert reply.headers["Tus-Checksum-Algorithm"] == "sha1"


async def test_creating_an_upload_answers_201_with_an_absolute_location_and_its_expiry(
    api, staff_token, settings
):
    reply = await create(api, staff_token, 1000)
    assert reply.code == 201
    assert reply.headers["Tus-Resumable"] == "1.0.0"
    location = reply.headers["Location"]
    assert location.startswith("http://127.0.0.1:") and path_of(location).startswith("/api/uploads/")
    assert reply.headers["Upload-Expires"].endswith(" GMT")
    assert len(parts(settings)) == 1

    status = await head(api, staff_token, path_of(location))
    assert status.code == 200
    assert status.headers["Upload-Offset"] == "0"
    assert status.headers["Upload-Length"] == "1000"
    assert status.headers["Cache-Control"] == "no-store"
    assert status.headers["Tus-Resumable"] == "1.0.0"


async def test_an_upload_without_upload_length_is_refused(api, staff_token):
    reply = await api.post(
        "/api/uploads/", body=b"", headers={**TUS, "Upload-Metadata": metadata(title="x")}, token=staff_token
    )
    assert reply.code == 400
    assert reply.data == {"Upload-Length": ["This header is required."]}
    reply = await create(api, staff_token, "ten")
    assert reply.code == 400
    assert reply.data == {"Upload-Length": ["A whole number of bytes is required."]}


async def test_an_upload_over_the_size_limit_is_413_before_any_byte(api, staff_token, settings):
    reply = await create(api, staff_token, settings.media.max_upload_mb * MIB + 1)
    assert reply.code == 413
    assert parts(settings) == []


@pytest.mark.parametrize("settings_overrides", [{"media": {"min_free_mb": 10**12}}])
async def test_an_upload_the_disk_has_no_room_for_is_507(api, staff_token, settings):
    reply = await create(api, staff_token, 1000)
    assert reply.code == 507
    assert parts(settings) == []


async def test_the_metadata_needs_a_title(api, staff_token, settings):
    reply = await create(api, staff_token, 1000, metadata(description="no title"))
    assert reply.code == 400
    assert reply.data == {"title": ["This field is required."]}
    assert parts(settings) == []


async def test_metadata_that_is_not_base64_is_a_field_error(api, staff_token):
    reply = await create(api, staff_token, 1000, "title !!!not-base64!!!")
    assert reply.code == 400
    assert reply.data == {"title": ["Not base64-encoded UTF-8 text."]}


async def test_an_unknown_category_is_refused_at_creation(api, staff_token, settings):
    reply = await create(api, staff_token, 1000, metadata(title="x", category="nope"))
    assert reply.code == 400
    assert "category" in reply.data
    assert parts(settings) == []


def declared_headers(document, method, template):
    operation = document["paths"][template][method]
    return {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}


async def test_the_document_declares_the_tus_headers_as_the_server_checks_them(api, settings):
    document = (await api.get("/api/schema/")).data
    creation = declared_headers(document, "post", "/api/uploads/")
    assert creation["Upload-Length"]["required"] is True
    assert creation["Upload-Length"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": settings.media.max_upload_mb * MIB,
    }
    appending = declared_headers(document, "patch", "/api/uploads/{upload_id}/")
    assert appending["Upload-Offset"]["schema"] == {"type": "integer", "minimum": 0}
    assert re.fullmatch(appending["Upload-Checksum"]["schema"]["pattern"], sha1_header(b"abc"))
    for method, template in [
        ("post", "/api/uploads/"),
        *((m, "/api/uploads/{upload_id}/") for m in ("head", "patch", "delete")),
    ]:
        version = declared_headers(document, method, template)["Tus-Resumable"]
        assert version["schema"]["enum"] == ["1.0.0"] and version["required"] is False


@pytest.mark.parametrize(
    ("length", "error"),
    [
        ("0", "Ensure this value is greater than or equal to 1."),
        ("-1", "A whole number of bytes is required."),
        ("1e3", "A whole number of bytes is required."),
    ],
)
async def test_an_upload_length_below_one_byte_is_a_field_error_naming_the_header(
    api, staff_token, length, error
):
    reply = await create(api, staff_token, length)
    assert (reply.code, reply.data) == (400, {"Upload-Length": [error]})


async def test_an_offset_that_is_no_whole_number_is_a_field_error_naming_the_header(api, staff_token):
    where = path_of((await create(api, staff_token, 10)).headers["Location"])
    reply = await patch(api, staff_token, where, "-1", b"abc")
    assert (reply.code, reply.data) == (400, {"Upload-Offset": ["A whole number of bytes is required."]})


async def test_the_metadata_is_declared_as_base64_pairs_with_a_title_up_to_its_length_limit(api, staff_token):
    document = (await api.get("/api/schema/")).data
    declared = declared_headers(document, "post", "/api/uploads/")["Upload-Metadata"]
    assert declared["required"] is True
    pattern, limit = declared["schema"]["pattern"], declared["schema"]["maxLength"]
    assert re.fullmatch(pattern, metadata(title="My clip", description="Ünïcode", filename="a.mp4"))
    assert not re.fullmatch(pattern, metadata(description="no title"))
    assert not re.fullmatch(pattern, "title !!!not-base64!!!")
    reply = await create(api, staff_token, 1000, metadata(title="x", description="y" * limit))
    assert (reply.code, list(reply.data)) == (400, ["Upload-Metadata"])
    assert reply.data["Upload-Metadata"] == [f"Ensure this header has no more than {limit} characters."]


async def test_a_metadata_value_the_server_does_not_read_may_be_any_bytes(api, staff_token):
    binary = base64.b64encode(b"\xff\xfe\x00").decode()
    reply = await create(api, staff_token, 1000, metadata(title="My clip") + f",checksum {binary}")
    assert reply.code == 201


async def test_another_protocol_version_is_412_with_the_supported_one(api, staff_token):
    reply = await create(api, staff_token, 1000, **{"Tus-Resumable": "0.2.2"})
    assert reply.code == 412
    assert reply.headers["Tus-Version"] == "1.0.0"
    assert reply.headers["Tus-Resumable"] == "1.0.0"


async def test_users_and_anonymous_callers_cannot_upload(api, user_token, settings):
    assert (await create(api, user_token, 1000)).code == 403
    assert (await create(api, None, 1000)).code == 401
    assert parts(settings) == []


# --- appending ------------------------------------------------------------------------------------


async def test_a_patch_appends_at_the_offset_and_head_reports_it(api, staff_token):
    where = path_of((await create(api, staff_token, 10)).headers["Location"])
    reply = await patch(api, staff_token, where, 0, b"abcd")
    assert reply.code == 204
    assert reply.headers["Upload-Offset"] == "4"
    assert reply.headers["Tus-Resumable"] == "1.0.0"
    assert reply.headers["Upload-Expires"].endswith(" GMT")
    assert (await head(api, staff_token, where)).headers["Upload-Offset"] == "4"


async def test_a_patch_at_the_wrong_offset_is_409_and_changes_nothing(api, staff_token):
    where = path_of((await create(api, staff_token, 10)).headers["Location"])
    await patch(api, staff_token, where, 0, b"abcd")
    reply = await patch(api, staff_token, where, 2, b"xx")
    assert reply.code == 409
    assert reply.data == {"detail": "Upload-Offset 2 does not match the upload's offset 4."}
    assert (await head(api, staff_token, where)).headers["Upload-Offset"] == "4"


async def test_a_patch_of_another_media_type_is_415(api, staff_token):
    where = path_of((await create(api, staff_token, 10)).headers["Location"])
    reply = await patch(api, staff_token, where, 0, b"abcd", **{"Content-Type": "application/octet-stream"})
    assert reply.code == 415
    assert (await head(api, staff_token, where)).headers["Upload-Offset"] == "0"


async def test_bytes_past_the_upload_length_are_refused(api, staff_token, settings):
    where = path_of((await create(api, staff_token, 10)).headers["Location"])
    reply = await patch(api, staff_token, where, 0, b"0123456789ABC")
    assert reply.code == 413
    assert (await head(api, staff_token, where)).headers["Upload-Offset"] == "0"
    assert parts(settings)[0].stat().st_size == 0


async def test_a_body_that_fails_its_checksum_is_460_and_dropped(api, staff_token, settings):
    where = path_of((await create(api, staff_token, 10)).headers["Location"])
    assert (
        await patch(api, staff_token, where, 0, b"abc", **{"Upload-Checksum": sha1_header(b"abc")})
    ).code == 204
    reply = await patch(api, staff_token, where, 3, b"def", **{"Upload-Checksum": sha1_header(b"xyz")})
    assert reply.code == 460
    assert reply.headers["Tus-Resumable"] == "1.0.0"
    assert (await head(api, staff_token, where)).headers["Upload-Offset"] == "3"
    assert parts(settings)[0].read_bytes() == b"abc"


async def test_an_unsupported_checksum_algorithm_is_400(api, staff_token):
    where = path_of((await create(api, staff_token, 10)).headers["Location"])
    reply = await patch(
        api, staff_token, where, 0, b"abc", **{"Upload-Checksum": "md5 kAFQmDzST7DWlj99KOF/cg=="}
    )
    assert reply.code == 400
    assert reply.data == {"detail": 'Unsupported checksum algorithm "md5"; use sha1.'}


async def test_only_the_staff_member_who_created_an_upload_sees_it(api, staff_token, other_staff_token):
    where = path_of((await create(api, staff_token, 10)).headers["Location"])
    assert (await head(api, other_staff_token, where)).code == 404
    assert (await patch(api, other_staff_token, where, 0, b"abc")).code == 404
    assert (await api.delete(where, headers=dict(TUS), token=other_staff_token)).code == 404
    assert (await head(api, staff_token, where)).code == 200


async def test_an_unknown_upload_is_404_with_the_protocol_header(api, staff_token):
    reply = await patch(api, staff_token, "/api/uploads/0123456789abcdef01234567/", 0, b"abc")
    assert reply.code == 404
    assert reply.headers["Tus-Resumable"] == "1.0.0"
    assert (await head(api, staff_token, "/api/uploads/not-an-id/")).code == 404


# --- termination and expiry -----------------------------------------------------------------------


async def test_delete_terminates_an_upload_and_removes_its_bytes(api, staff_token, settings):
    where = path_of((await create(api, staff_token, 10)).headers["Location"])
    await patch(api, staff_token, where, 0, b"abc")
    reply = await api.delete(where, headers=dict(TUS), token=staff_token)
    assert reply.code == 204
    assert reply.headers["Tus-Resumable"] == "1.0.0"
    assert parts(settings) == []
    assert (await head(api, staff_token, where)).code == 404


async def test_an_expired_upload_is_gone_and_the_sweep_removes_it(
    api, staff_token, services, clock, settings
):
    where = path_of((await create(api, staff_token, 10)).headers["Location"])
    await patch(api, staff_token, where, 0, b"abc")
    clock.advance(hours=settings.media.upload_expiry_h + 1)
    assert (await head(api, staff_token, where)).code == 410
    reply = await patch(api, staff_token, where, 3, b"def")
    assert reply.code == 410
    assert reply.data == {"detail": "The upload has expired."}
    assert await services.uploads.expire_stale() == (1, 3)
    assert parts(settings) == []
    assert (await head(api, staff_token, where)).code == 404


async def test_progress_pushes_the_expiry_back(api, staff_token, services, clock, settings):
    where = path_of((await create(api, staff_token, 10)).headers["Location"])
    clock.advance(hours=settings.media.upload_expiry_h - 1)
    await patch(api, staff_token, where, 0, b"abc")
    clock.advance(hours=2)
    assert (await head(api, staff_token, where)).headers["Upload-Offset"] == "3"
    assert await services.uploads.expire_stale() == (0, 0)


async def test_the_periodic_sweep_expires_stale_uploads(api, staff_token, services, clock, settings):
    await create(api, staff_token, 10)
    clock.advance(hours=settings.media.upload_expiry_h + 1)
    assert await UploadExpiry(services.uploads.files).sweep() == (1, 0)
    assert parts(settings) == []


# --- completion -----------------------------------------------------------------------------------


async def test_a_complete_upload_becomes_a_pending_video_with_a_job(api, staff_token, clips, settings, db):
    data = clips["small"].read_bytes()
    reply = await create(api, staff_token, len(data), metadata(title="Resumed", description="tus"))
    where = path_of(reply.headers["Location"])
    reply = await patch(api, staff_token, where, 0, data)
    assert reply.code == 204
    video_id = reply.headers["Video-Id"]
    video = (await api.get(f"/api/videos/{video_id}/", token=staff_token)).data
    assert (video["title"], video["description"], video["status"]) == ("Resumed", "tus", "pending")
    assert (video["width"], video["height"]) == (426, 240)
    job = await db.jobs.find_one({"type": "transcode"})
    assert str(job["payload"]["video_id"]) == video_id and job["state"] == "queued"
    assert [p.read_bytes() for p in sources(settings)] == [data]
    assert parts(settings) == []
    status = await head(api, staff_token, where)
    assert (status.headers["Upload-Offset"], status.headers["Video-Id"]) == (str(len(data)), video_id)


async def test_a_complete_upload_that_is_no_video_is_400_and_removed(api, staff_token, settings, db):
    data = b"not a video at all" * 100
    where = path_of((await create(api, staff_token, len(data))).headers["Location"])
    reply = await patch(api, staff_token, where, 0, data)
    assert reply.code == 400
    assert list(reply.data) == ["file"]
    assert parts(settings) == [] and sources(settings) == []
    assert await db.videos.count_documents({}) == 0
    assert (await head(api, staff_token, where)).code == 404


# --- CORS -----------------------------------------------------------------------------------------


async def test_an_allowed_origin_may_send_and_read_the_tus_headers(api, staff_token, settings):
    origin = settings.server.frontend_url.rstrip("/")
    preflight = await api.request(
        "OPTIONS", "/api/uploads/0123456789abcdef01234567/", headers={"Origin": origin}
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    allowed = preflight.headers["Access-Control-Allow-Headers"]
    for name in ("Tus-Resumable", "Upload-Length", "Upload-Metadata", "Upload-Offset", "Upload-Checksum"):
        assert name in allowed
    assert "PATCH" in preflight.headers["Access-Control-Allow-Methods"]
    reply = await create(api, staff_token, 10, Origin=origin)
    exposed = reply.headers["Access-Control-Expose-Headers"]
    for name in ("Location", "Upload-Offset", "Upload-Length", "Upload-Expires", "Tus-Resumable", "Video-Id"):
        assert name in exposed


# --- the real client: tuspy -----------------------------------------------------------------------


def tus_client(api, token: str) -> TusClient:
    return TusClient(api.client.get_url("/api/uploads/"), headers={"Authorization": f"Token {token}"})


async def in_thread(function, *args):
    """tuspy is blocking (requests): it runs in a thread while the server answers on this loop."""
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


async def test_tuspy_uploads_a_clip_in_chunks_and_it_becomes_a_video(api, staff_token, clips, settings, db):
    with clips["small"].open("rb") as stream:
        uploader = tus_client(api, staff_token).uploader(
            file_stream=stream,
            chunk_size=16 * 1024,
            metadata={"title": "From tuspy", "filename": "small.mp4"},
        )
        await in_thread(uploader.upload)
    video_id = uploader.request.response_headers["video-id"]
    video = (await api.get(f"/api/videos/{video_id}/", token=staff_token)).data
    assert (video["title"], video["status"]) == ("From tuspy", "pending")
    assert await db.jobs.count_documents({"type": "transcode"}) == 1
    assert [p.read_bytes() for p in sources(settings)] == [clips["small"].read_bytes()]


async def test_an_upload_cut_off_half_way_resumes_from_the_servers_offset_byte_identical(
    api, staff_token, clips, settings, db
):
    data = clips["hd"].read_bytes()
    half = len(data) // 2
    client = tus_client(api, staff_token)
    with clips["hd"].open("rb") as stream:
        uploader = client.uploader(file_stream=stream, metadata={"title": "Cut off"})
        location = await in_thread(uploader.create_url)

    # A PATCH that declares the whole file, sends half of it, and loses its connection.
    _, writer = await asyncio.open_connection("127.0.0.1", urlsplit(location).port)
    writer.write(
        (
            f"PATCH {path_of(location)} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {staff_token}\r\n"
            f"Tus-Resumable: 1.0.0\r\nContent-Type: {OCTETS}\r\nUpload-Offset: 0\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        ).encode()
        + data[:half]
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    for _ in range(100):  # the server keeps every byte that arrived
        if (await head(api, staff_token, path_of(location))).headers["Upload-Offset"] == str(half):
            break
        await asyncio.sleep(0.05)
    assert (await head(api, staff_token, path_of(location))).headers["Upload-Offset"] == str(half)

    with clips["hd"].open("rb") as stream:
        resumed = await in_thread(
            lambda: client.uploader(file_stream=stream, url=location, chunk_size=64 * 1024)
        )
        assert resumed.offset == half  # from the server's HEAD
        await in_thread(resumed.upload)
    video_id = resumed.request.response_headers["video-id"]
    [source] = sources(settings)
    assert source.parent.name == video_id
    assert hashlib.sha256(source.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert await db.videos.count_documents({"title": "Cut off"}) == 1


async def test_a_chunked_patch_whose_every_byte_arrived_before_the_drop_still_becomes_a_video(
    api, staff_token, clips, settings
):
    data = clips["small"].read_bytes()
    location = (await create(api, staff_token, len(data))).headers["Location"]
    _, writer = await asyncio.open_connection("127.0.0.1", urlsplit(location).port)
    writer.write(
        (
            f"PATCH {path_of(location)} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {staff_token}\r\n"
            f"Tus-Resumable: 1.0.0\r\nContent-Type: {OCTETS}\r\nUpload-Offset: 0\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n{len(data):x}\r\n"
        ).encode()
        + data
        + b"\r\n"  # ... and never the last, empty chunk
    )
    await writer.drain()
    for _ in range(100):  # Tornado hands a chunked body over once it waits for more
        if parts(settings)[0].stat().st_size == len(data):
            break
        await asyncio.sleep(0.05)
    writer.close()
    await writer.wait_closed()
    for _ in range(100):
        status = await head(api, staff_token, path_of(location))
        if "Video-Id" in status.headers:
            break
        await asyncio.sleep(0.05)
    assert status.headers["Upload-Offset"] == str(len(data))
    [source] = sources(settings)
    assert source.parent.name == status.headers["Video-Id"]
    assert source.read_bytes() == data


@pytest.mark.parametrize(
    "headers", [{}, TUS, {"Tus-Resumable": "0.2.2"}], ids=["bare", "tus", "other-version"]
)
async def test_an_undeclared_method_is_405_with_allow_whatever_the_protocol_header(api, staff_token, headers):
    for path, allowed in (
        ("/api/uploads/", "POST, OPTIONS"),
        ("/api/uploads/x/", "HEAD, PATCH, DELETE, OPTIONS"),
    ):
        reply = await api.put(path, body=b"", headers=headers, token=staff_token)
        assert reply.code == 405
        assert reply.headers["Allow"] == allowed
        assert reply.data == {"detail": 'Method "PUT" not allowed.'}
        assert (await api.put(path, body=b"", headers=headers)).code == 405  # anonymous too


@pytest.mark.parametrize("ending", ["close", "half-close"])
async def test_a_patch_cut_off_mid_body_is_a_client_abort_and_its_bytes_stay_for_a_resume(
    api, staff_token, services, settings, caplog, ending
):
    length = 3 * MIB
    where = path_of((await create(api, staff_token, length)).headers["Location"])
    port = int(urlsplit(api.client.get_url("/")).port)
    sent = MIB + 12345
    caplog.set_level("INFO")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"PATCH {where} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {staff_token}\r\n"
            f"Tus-Resumable: 1.0.0\r\nContent-Type: {OCTETS}\r\nUpload-Offset: 0\r\n"
            f"Content-Length: {length}\r\n\r\n"
        ).encode()
        + b"v" * sent
    )
    await writer.drain()
    for _ in range(100):  # every byte that arrived is on disk before the client goes
        if parts(settings) and parts(settings)[0].stat().st_size == sent:
            break
        await asyncio.sleep(0.02)
    if ending == "half-close":
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the server closed its side: no answer
    writer.close()
    for _ in range(100):
        if "went away" in caplog.text:
            break
        await asyncio.sleep(0.02)
    assert f"PATCH {where}: the client went away after {sent} of {length} body bytes" in caplog.text
    assert f"PATCH {where} 499" in caplog.text
    assert not [record for record in caplog.records if record.levelname in ("ERROR", "CRITICAL")]
    assert services.metrics.in_flight._value.get() == 0

    status = await head(api, staff_token, where)
    assert status.headers["Upload-Offset"] == str(sent)  # the client resumes from here
    reply = await patch(api, staff_token, where, sent, b"w" * 10)
    assert (reply.code, reply.headers["Upload-Offset"]) == (204, str(sent + 10))


async def test_a_patch_while_another_request_holds_the_upload_is_423_with_retry_after(
    api, staff_token, services, clock, monkeypatch
):
    monkeypatch.setattr("services.uploads.LOCK_WAIT_S", 0.2)
    where = path_of((await create(api, staff_token, 10)).headers["Location"])
    upload_id = where.rstrip("/").rsplit("/", 1)[1]
    records = services.uploads.uploads
    held = await records.acquire(
        ObjectId(upload_id), "another-process", clock(), clock() + timedelta(seconds=15)
    )
    assert held is not None  # as a PATCH streaming on another process holds it
    reply = await patch(api, staff_token, where, 0, b"abc")
    assert (reply.code, reply.headers["Retry-After"]) == (423, "1")
    assert reply.data == {"detail": "Another PATCH is writing to this upload."}
    assert (await api.delete(where, headers=dict(TUS), token=staff_token)).code == 409
    await records.release(ObjectId(upload_id), "another-process")
    assert (await patch(api, staff_token, where, 0, b"abc")).headers["Upload-Offset"] == "3"
