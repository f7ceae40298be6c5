"""Roles: an api process serves HTTP and queues jobs; a transcode process runs them and serves only health."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from handlers.app import HANDLER_MODULES, handler_modules_for, make_app
from services.container import ROLE_JOBS, build_services
from tests.media import multipart


def test_each_role_runs_its_job_types_and_serves_its_routes():
    assert ROLE_JOBS["all"] == ("mail", "transcode", "publish", "av1", "audio_track")
    assert "publish" in ROLE_JOBS["transcode"] and "publish" not in ROLE_JOBS["api"]
    assert "av1" in ROLE_JOBS["transcode"] and "av1" not in ROLE_JOBS["api"]
    assert "audio_track" in ROLE_JOBS["transcode"] and "audio_track" not in ROLE_JOBS["api"]
    assert "transcode" not in ROLE_JOBS["api"] and "mail" in ROLE_JOBS["api"]
    assert "transcode" in ROLE_JOBS["transcode"]
    assert handler_modules_for("all") == HANDLER_MODULES == handler_modules_for("api")
    assert [m.__name__ for m in handler_modules_for("transcode")] == ["handlers.health", "handlers.metrics"]


@pytest.fixture
def run_types():
    return ROLE_JOBS["api"]


async def test_an_api_process_queues_an_upload_and_leaves_it_to_a_transcode_process(
    api, staff_token, clips, db, services
):
    body, content_type = multipart({"title": "clip"}, clips["small"].read_bytes())
    reply = await api.post(
        "/api/videos/", body=body, headers={"Content-Type": content_type}, token=staff_token
    )
    assert reply.code == 201
    await services.queue.turn()
    job = await db.jobs.find_one({"type": "transcode"})
    assert (job["state"], job["owner"]) == ("queued", None)  # nobody here takes it


async def test_a_transcode_process_answers_health_and_nothing_else(settings, db, http_client):
    import tornado.testing
    from tornado.httpserver import HTTPServer

    services = build_services(settings, db, run_types=())
    app = make_app(services, handler_modules=handler_modules_for("transcode"))
    sock, port = tornado.testing.bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    try:
        health = await http_client.fetch(f"http://127.0.0.1:{port}/api/health/", raise_error=False)
        videos = await http_client.fetch(f"http://127.0.0.1:{port}/api/videos/", raise_error=False)
    finally:
        server.stop()
        await services.stop()
    assert health.code == 200
    assert (videos.code, json.loads(videos.body)) == (404, {"detail": "Not found."})


def test_an_api_and_a_transcode_process_on_one_mongodb_make_an_upload_ready(tmp_path, clips, mongodb_uri):
    from tests.conftest import database_uri
    from tests.test_server import Running, environment
    from tests.transcoding.test_supervisor import upload_to

    uri = database_uri(mongodb_uri, "roles")
    common = {"MONGODB_URI": uri, "MEDIA_ROOT": str(tmp_path / "media"), "SECRET_KEY": "roles-test-secret"}
    api_process = Running(
        "--port",
        "0",
        "--role",
        "api",
        env=environment(**common, ADMIN_EMAIL="root@example.com", ADMIN_PASSWORD="a-long-password"),
    )
    transcoder = Running("--port", "0", "--role", "transcode", env=environment(**common))
    try:
        url = api_process.wait_for(r"listening on (http://\S+)").group(1)
        transcoder.wait_for(r"listening on")
        video_id = upload_to(url, clips["small"])
        token = login(url)
        for _ in range(600):
            request = urllib.request.Request(
                f"{url}/api/videos/{video_id}/", headers={"Authorization": f"Token {token}"}
            )
            video = json.loads(urllib.request.urlopen(request, timeout=10).read())
            if video["status"] in ("ready", "failed"):
                break
            time.sleep(0.1)
        assert video["status"] == "ready"
    finally:
        assert api_process.stop() == 0
        assert transcoder.stop() == 0


def login(url: str) -> str:
    request = urllib.request.Request(
        f"{url}/api/accounts/login/",
        method="POST",
        headers={"Content-Type": "application/json"},
        data=json.dumps({"email": "root@example.com", "password": "a-long-password"}).encode(),
    )
    return json.loads(urllib.request.urlopen(request, timeout=10).read())["token"]
