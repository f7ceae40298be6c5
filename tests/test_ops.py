"""Operating the server: crash logs that help (redacted), request ids, JSON logs, CORS from the environment,
stream URLs any player can fetch, absolute URLs behind PUBLIC_URL, one compact JSON encoding."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import types

import pytest
from bson import ObjectId

from core import logs
from core.config import load_settings
from handlers.app import HANDLER_MODULES
from handlers.base import BaseHandler, public
from models.videos import new_video

HEX_TOKEN = "ab" * 32
PASSWORD = "correct-horse-battery"


class ExplodingHandler(BaseHandler):
    @public
    async def get(self) -> None:
        password = PASSWORD  # in the locals and in the source line of the traceback
        token = HEX_TOKEN
        raise RuntimeError(f"boom with token {token} and password={password}")


probe = types.SimpleNamespace(routes=[(r"/probe/explode/", ExplodingHandler)])


@pytest.fixture
def handler_modules():
    return [*HANDLER_MODULES, probe]


@pytest.fixture
def log_lines():
    """What the server's own log handler (filter and format included) writes, as text."""
    stream = io.StringIO()
    handler = logs.log_handler("plain", stream)
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)


async def test_a_crash_logs_its_type_message_and_traceback_with_every_secret_redacted(
    http_server_client, log_lines
):
    code = "eyJ2IjoiNjQ1In0.aGVsbG8.c2lnbmF0dXJlLW9mLXR3ZW50eS1jaGFycw"
    response = await http_server_client.fetch(
        f"/probe/explode/?code={code}",
        headers={"Authorization": f"Token {HEX_TOKEN}", "X-Request-ID": "crash-42"},
        raise_error=False,
    )
    assert response.code == 500
    assert json.loads(response.body) == {"detail": "A server error occurred."}
    text = log_lines.getvalue()
    assert "uncaught RuntimeError in GET /probe/explode/" in text
    assert "Traceback (most recent call last)" in text and "test_ops.py" in text
    assert "[crash-42]" in text
    for secret in (HEX_TOKEN, PASSWORD, code):
        assert secret not in text


def test_redaction_covers_tokens_codes_grants_passwords_and_authorization():
    line = (
        'Authorization: Token abcdef {"new_password": "s3cret!"} password=hunter2 /x?code=abc.def&y=1 '
        f"/api/stream/eyJ2IjoiNjQ1In0.aGVsbG8.c2lnbmF0dXJlLW9mLXR3ZW50eS1jaGFycw/master.m3u8 {'f' * 64}"
    )
    redacted = logs.redact(line)
    for secret in ("abcdef", "s3cret!", "hunter2", "abc.def", "aGVsbG8", "f" * 64):
        assert secret not in redacted
    assert "/master.m3u8" in redacted and "y=1" in redacted


async def test_a_request_id_is_echoed_and_found_in_the_access_log(api, log_lines):
    reply = await api.get("/api/health/", headers={"X-Request-ID": "trace-abc-123"})
    assert reply.headers["X-Request-ID"] == "trace-abc-123"
    assert any(
        "[trace-abc-123]" in line and "GET /api/health/ 200" in line
        for line in log_lines.getvalue().splitlines()
    )


@pytest.mark.parametrize("sent", ["x" * 129, "has space", ""])
async def test_an_unusable_request_id_is_replaced_by_a_new_one(api, sent):
    reply = await api.get("/api/health/", headers={"X-Request-ID": sent} if sent else {})
    made = reply.headers["X-Request-ID"]
    assert made != sent and 1 <= len(made) <= 128


async def test_each_request_without_an_id_gets_its_own(api):
    first = await api.get("/api/health/")
    second = await api.get("/api/health/")
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


def test_json_log_lines_carry_the_request_id_and_redact_secrets():
    stream = io.StringIO()
    handler = logs.log_handler("json", stream)
    logger = logging.getLogger("videoflix.test-json")
    logger.addHandler(handler)
    logger.propagate = False
    token = logs.request_id.set("json-7")
    try:
        logger.warning("login with password=%s", "hunter2")
    finally:
        logs.request_id.reset(token)
        logger.removeHandler(handler)
    record = json.loads(stream.getvalue())
    assert record["request_id"] == "json-7"
    assert record["level"] == "WARNING"
    assert "hunter2" not in record["message"]


def test_log_format_and_cors_origins_come_from_the_environment():
    settings = load_settings(
        None,
        environ={
            "LOG_FORMAT": "json",
            "CORS_ORIGINS": "http://127.0.0.1:8090, http://127.0.0.1:4200/",
            "PUBLIC_URL": "https://api.example.com",
        },
    )
    assert settings.server.log_format == "json"
    assert settings.server.cors_origins == ["http://127.0.0.1:8090", "http://127.0.0.1:4200"]
    assert settings.server.public_url == "https://api.example.com"


async def test_an_error_is_compact_json_like_every_success(api):
    reply = await api.get("/api/nowhere/")
    assert reply.body == b'{"detail":"Not found."}'
    assert reply.headers["X-Request-ID"]


@pytest.fixture
def ready_doc(db, services, io_loop):
    async def add() -> str:
        video_id = ObjectId()
        doc = new_video(video_id, "Ready", "", None, f"videos/{video_id}/source", None, services.clock())
        doc.update(
            status="ready",
            duration=10.0,
            hls_path=f"videos/{video_id}/hls",
            thumbnail_path=f"videos/{video_id}/hls/thumbnail.jpg",
            renditions=[{"height": 360, "width": 640, "bandwidth": 800000}],
        )
        await db.videos.insert_one(doc)
        services.catalogue.videos.invalidate()
        return str(video_id)

    return io_loop.run_sync(add)


async def test_stream_urls_answer_any_origin_and_its_preflight(api, services, user_token, ready_doc):
    user = await services.accounts.user_for_token(user_token)
    grant = services.grants.grant(ready_doc, user)
    origin = {"Origin": "http://127.0.0.1:8090"}
    reply = await api.get(f"/api/stream/{grant}/master.m3u8", headers=origin)
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in reply.headers
    preflight = await api.request(
        "OPTIONS",
        f"/api/stream/{grant}/master.m3u8",
        headers={**origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "range"},
    )
    assert preflight.code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "Range" in preflight.headers["Access-Control-Allow-Headers"]


async def test_the_api_itself_still_answers_only_its_own_origins(api):
    reply = await api.get("/api/health/", headers={"Origin": "http://127.0.0.1:8090"})
    assert "Access-Control-Allow-Origin" not in reply.headers


class TestPublicUrl:
    @pytest.fixture
    def settings_overrides(self):
        return {"server": {"public_url": "https://api.example.com/"}}

    async def test_every_url_in_the_json_is_absolute(self, api, user_token, ready_doc, db, services, clock):
        for _ in range(2):
            other = ObjectId()
            await db.videos.insert_one(
                {**new_video(other, "More", "", None, "s", None, clock()), "status": "ready", "duration": 5.0}
            )
        services.catalogue.videos.invalidate()
        detail = await api.get(f"/api/videos/{ready_doc}/", token=user_token)
        assert detail.data["hls_url"].startswith("https://api.example.com/api/stream/")
        assert detail.data["thumbnail_url"].startswith("https://api.example.com/api/stream/")
        assert detail.data["renditions"][0]["url"].startswith("https://api.example.com/api/stream/")
        page = await api.get("/api/videos/?limit=1&offset=1", token=user_token)
        assert page.data["next"].startswith("https://api.example.com/api/videos/?")
        assert page.data["previous"].startswith("https://api.example.com/api/videos/?")


async def send_upload_head(port: int, headers: dict[str, str], length: int) -> tuple[int, bytes]:
    """Headers of a large upload and its first 64 KiB; the answer, read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = ["POST /api/videos/ HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + b"x" * 65536)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    data = b""
    with contextlib.suppress(ConnectionError):  # the server closes with our body unread: maybe a reset
        while chunk := await asyncio.wait_for(reader.read(65536), 10):
            data += chunk
    writer.close()
    if not data:
        return 0, b"{}"
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize(
    ("who", "content_type", "length", "status"),
    [
        ("user", "multipart/form-data; boundary=b", 200 * 1024 * 1024, 403),
        ("nobody", "multipart/form-data; boundary=b", 200 * 1024 * 1024, 401),
        ("staff", "video/mp4", 200 * 1024 * 1024, 415),
        ("staff", "multipart/form-data; boundary=b", 10**13, 413),
    ],
)
async def test_a_refused_upload_is_answered_in_json_and_never_logged_as_malformed(
    http_server, http_server_port, user_token, staff_token, caplog, who, content_type, length, status
):
    headers = {"Content-Type": content_type}
    token = {"user": user_token, "staff": staff_token}.get(who)
    if token:
        headers["Authorization"] = f"Token {token}"
    with caplog.at_level(logging.INFO):
        code, body = await send_upload_head(http_server_port[1], headers, length)
        await asyncio.sleep(0.05)
    assert code in (status, 0)  # 0: the answer was lost to the reset of a body left unsent
    assert "Malformed HTTP message" not in caplog.text
    if code:
        assert "detail" in json.loads(body)
