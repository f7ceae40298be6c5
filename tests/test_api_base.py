"""The JSON API base: errors as JSON, access declared on every method, CORS, health and ready."""

from __future__ import annotations

import types
from typing import Any

import pytest
from pymongo.errors import ServerSelectionTimeoutError

from handlers import health
from handlers.app import HANDLER_MODULES, make_app
from handlers.base import (
    APIError,
    BaseHandler,
    UndeclaredAccess,
    check_access_declared,
    public,
    staff_only,
    user_only,
)
from models.db import Database, open_memory_database
from services.container import build_services
from tests.conftest import make_token


class EchoHandler(BaseHandler):
    @public
    def post(self) -> None:
        self.send_json({"got": self.json_body()}, status=201)


class MineHandler(BaseHandler):
    @user_only
    def get(self) -> None:
        self.send_json({"email": self.current_user.email})


class StaffHandler(BaseHandler):
    @staff_only
    def get(self) -> None:
        self.send_json({"ok": True})


class CrashHandler(BaseHandler):
    @public
    def get(self) -> None:
        raise RuntimeError("a bug with a secret in it: hunter2")


class TeapotHandler(BaseHandler):
    @public
    def get(self) -> None:
        raise APIError(429, "Slow down.", headers={"Retry-After": "7"})


probe = types.SimpleNamespace(
    routes=[
        (r"/probe/echo/", EchoHandler),
        (r"/probe/mine/", MineHandler),
        (r"/probe/staff/", StaffHandler),
        (r"/probe/crash/", CrashHandler),
        (r"/probe/limited/", TeapotHandler),
    ]
)


@pytest.fixture
def handler_modules():
    return [*HANDLER_MODULES, probe]


async def make_user(services, email="user@example.com", *, verified=True, staff=False, active=True):
    token = await make_token(services, email, staff=staff, verified=verified)
    if not active:
        await services.db.users.update_one({"email_lower": email}, {"$set": {"is_active": False}})
    return token


async def test_health_answers_ok(api):
    reply = await api.get("/api/health/")
    assert reply.code == 200
    assert reply.data == {"status": "ok"}


async def test_health_answers_without_the_trailing_slash_too(api):
    assert (await api.get("/api/health")).code == 200


async def test_ready_answers_ok_when_the_database_answers(api):
    reply = await api.get("/api/ready/")
    assert reply.code == 200
    assert reply.data == {"status": "ok"}


async def test_ready_answers_503_with_json_when_the_database_is_unreachable(http_client, settings, io_loop):
    class Unreachable:
        """A database whose server does not answer (a real client's monitor would leak its sockets here)."""

        async def command(self, name: str) -> None:
            raise ServerSelectionTimeoutError("127.0.0.1:1: [Errno 111] Connection refused")

        def __getattr__(self, name: str) -> Any:
            return None

    dead = Database(client=types.SimpleNamespace(close=lambda: None), db=Unreachable(), in_memory=False)
    app = make_app(build_services(settings, dead, run_types=()), handler_modules=[health])
    import tornado.testing

    sock, port = tornado.testing.bind_unused_port()
    from tornado.httpserver import HTTPServer

    server = HTTPServer(app)
    server.add_sockets([sock])
    try:
        response = await http_client.fetch(f"http://127.0.0.1:{port}/api/ready/", raise_error=False)
    finally:
        server.stop()
    assert response.code == 503
    assert b'"detail"' in response.body


def test_handlers_see_services_only_not_the_database_queue_or_pool(app, services):
    """`self.services` in a handler is the facade: the rules, no way past them."""
    seen = app.settings["services"]
    for hidden in ("db", "queue", "pool", "hasher", "mailer", "sampler", "clock", "upload_expiry"):
        assert not hasattr(seen, hidden), hidden
    assert seen.accounts is services.accounts
    assert seen.admin.job_types() == tuple(services.queue.types)


async def test_unknown_path_is_a_json_404(api):
    reply = await api.get("/no/such/thing")
    assert reply.code == 404
    assert reply.data == {"detail": "Not found."}


async def test_unknown_path_with_any_method_is_a_json_404(api):
    reply = await api.delete("/no/such/thing")
    assert reply.code == 404
    assert reply.data == {"detail": "Not found."}


async def test_wrong_method_is_a_json_405_naming_the_method_and_the_allowed_ones(api):
    reply = await api.delete("/api/health/")
    assert reply.code == 405
    assert reply.data == {"detail": 'Method "DELETE" not allowed.'}
    assert "GET" in reply.headers["Allow"]


async def test_malformed_json_is_a_json_400(api):
    reply = await api.post("/probe/echo/", body="{not json", headers={"Content-Type": "application/json"})
    assert reply.code == 400
    assert reply.data["detail"].startswith("JSON parse error")


async def test_a_body_nested_deeper_than_the_recursion_limit_is_a_json_400_not_a_crash(api, caplog):
    with caplog.at_level("ERROR"):
        reply = await api.post(
            "/probe/echo/", body="[" * 100_000, headers={"Content-Type": "application/json"}
        )
    assert reply.code == 400
    assert reply.data["detail"].startswith("JSON parse error")
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text


async def test_a_body_nested_two_hundred_deep_still_reaches_the_handler(api):
    reply = await api.post(
        "/probe/echo/", body="[" * 200 + "]" * 200, headers={"Content-Type": "application/json"}
    )
    assert reply.code == 201


async def test_a_body_that_is_not_json_is_a_json_415(api):
    reply = await api.post(
        "/probe/echo/", body="a=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert reply.code == 415
    assert "application/x-www-form-urlencoded" in reply.data["detail"]


async def test_valid_json_reaches_the_handler(api):
    reply = await api.post("/probe/echo/", {"a": [1, 2]})
    assert reply.code == 201
    assert reply.data == {"got": {"a": [1, 2]}}


async def test_a_crash_is_a_json_500_without_traceback_or_secrets(api, caplog):
    reply = await api.get("/probe/crash/")
    assert reply.code == 500
    assert reply.data == {"detail": "A server error occurred."}
    assert b"hunter2" not in reply.body and b"Traceback" not in reply.body


async def test_a_crash_is_logged_by_path_without_the_query_or_the_token(api, services, caplog):
    token = await make_user(services)
    with caplog.at_level("ERROR"):
        await api.get("/probe/crash/?code=secret-code-123", token=token)
    assert "uncaught RuntimeError in GET /probe/crash/" in caplog.text
    assert "secret-code-123" not in caplog.text
    assert token not in caplog.text


async def test_api_errors_carry_their_headers(api):
    reply = await api.get("/probe/limited/")
    assert reply.code == 429
    assert reply.headers["Retry-After"] == "7"
    assert reply.data == {"detail": "Slow down."}


@pytest.mark.parametrize(
    "path", ["/api/videos/%00/", "/api/videos/a%00b/progress/", "/api/stream/%00/x.m3u8"]
)
async def test_a_nul_in_a_path_parameter_is_a_json_404_whatever_the_route(api, services, path):
    reply = await api.get(path, token=await make_user(services))
    assert reply.code == 404
    assert reply.data == {"detail": "Not found."}


async def test_user_only_without_a_token_is_401(api):
    reply = await api.get("/probe/mine/")
    assert reply.code == 401
    assert reply.data == {"detail": "Authentication credentials were not provided."}


async def test_user_only_with_an_unknown_token_is_401(api):
    reply = await api.get("/probe/mine/", token="0" * 64)
    assert reply.code == 401
    assert reply.data == {"detail": "Invalid token."}


async def test_user_only_with_a_valid_token_sees_the_user(api, services):
    token = await make_user(services)
    reply = await api.get("/probe/mine/", token=token)
    assert reply.code == 200
    assert reply.data == {"email": "user@example.com"}


async def test_an_unverified_users_token_is_401_not_verified(api, services):
    token = await make_user(services, verified=False)
    reply = await api.get("/probe/mine/", token=token)
    assert reply.code == 401
    assert reply.data == {"detail": "User account not verified."}


async def test_an_inactive_users_token_is_401_not_active(api, services):
    token = await make_user(services, active=False)
    reply = await api.get("/probe/mine/", token=token)
    assert reply.code == 401
    assert reply.data == {"detail": "User account not active."}


async def test_staff_only_refuses_a_plain_user_with_403(api, services):
    token = await make_user(services)
    reply = await api.get("/probe/staff/", token=token)
    assert reply.code == 403


async def test_staff_only_lets_staff_in(api, services):
    token = await make_user(services, staff=True)
    assert (await api.get("/probe/staff/", token=token)).code == 200


def test_an_undeclared_handler_method_refuses_to_start(settings):
    class Careless(BaseHandler):
        def get(self) -> None:
            self.send_json({})

    services = build_services(settings, open_memory_database("undeclared"), run_types=())  # never started
    with pytest.raises(UndeclaredAccess, match=r"Careless\.get declares no access level"):
        make_app(services, handler_modules=[types.SimpleNamespace(routes=[(r"/x", Careless)])])
    services.hasher.close()


def test_every_shipped_handler_declares_its_access():
    check_access_declared(route[1] for module in HANDLER_MODULES for route in module.routes)


async def test_cors_preflight_from_the_front_end_allows_the_authorization_header(api):
    reply = await api.request(
        "OPTIONS",
        "/probe/mine/",
        headers={
            "Origin": "http://localhost:4200",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert reply.code == 204
    assert reply.headers["Access-Control-Allow-Origin"] == "http://localhost:4200"
    assert "Authorization" in reply.headers["Access-Control-Allow-Headers"]
    assert "GET" in reply.headers["Access-Control-Allow-Methods"]


async def test_cors_answers_carry_the_origin_header(api):
    reply = await api.get("/api/health/", headers={"Origin": "http://localhost:4200"})
    assert reply.headers["Access-Control-Allow-Origin"] == "http://localhost:4200"


async def test_cors_ignores_other_origins(api):
    reply = await api.request(
        "OPTIONS",
        "/probe/mine/",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "Access-Control-Allow-Origin" not in reply.headers
    assert "Access-Control-Allow-Methods" not in reply.headers


async def test_each_request_logs_one_line_without_the_query_string(api, caplog):
    with caplog.at_level("INFO", logger="videoflix.access"):
        await api.get("/no/such/path?code=sekrit-code")
    lines = [r.getMessage() for r in caplog.records if r.name == "videoflix.access"]
    assert len(lines) == 1
    assert lines[0].startswith("GET /no/such/path 404 ")
    assert lines[0].endswith("ms")
    assert "sekrit" not in caplog.text
