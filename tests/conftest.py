"""The fixture chain: settings → db → app → api (a JSON client over the real HTTP server)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPResponse

from core.clock import utcnow
from core.config import Settings, load_settings
from core.passwords import PasswordHasher
from handlers.app import make_app
from models import ensure_indexes
from models.db import open_database, open_memory_database
from services.container import build_services
from tests.mailbox import Mailbox
from tests.openapi_check import DocumentCheck

TEST_SECRET = "test-secret-key-that-is-long-enough-for-signing"


class FakeClock:
    """A clock the tests move instead of sleeping."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def settings_overrides(tmp_path) -> dict[str, Any]:
    """Override per module to change settings for its tests."""
    return {}


@pytest.fixture
def settings(tmp_path, settings_overrides, mail_settings) -> Settings:
    base = {
        "email": mail_settings,
        # The seed front-end's address, as the tests of mail links and CORS expect it.
        "server": {"secret_key": TEST_SECRET, "debug": False, "frontend_url": "http://localhost:4200"},
        "accounts": {"bcrypt_rounds": 4},
        "media": {"root": str(tmp_path / "media")},
        "jobs": {"poll_interval_s": 0.05, "jitter": 0},
        # no AV1 follow-up job unless a test asks for one (tests/transcoding/test_av1.py): it would run
        # beside the tests' own encodes and through their fake FFmpegs
        "transcode": {"av1": "off"},
    }
    layers = {
        section: {**base.get(section, {}), **settings_overrides.get(section, {})}
        for section in {*base, *settings_overrides}
    }
    return load_settings(None, environ={}, overrides=layers)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(io_loop):
    """mongomock-motor; a real MongoDB (a fresh database, dropped after) when TEST_MONGODB_URI is set."""
    uri = os.environ.get("TEST_MONGODB_URI")
    if uri:
        name = f"videoflix_test_{uuid.uuid4().hex[:12]}"
        database = io_loop.run_sync(lambda: open_database(uri, name, 5.0))
        database.db = database.client[name]
    else:
        database = open_memory_database("videoflix_test")
    io_loop.run_sync(lambda: ensure_indexes(database))
    yield database
    if uri:
        io_loop.run_sync(lambda: database.client.drop_database(database.db.name))
    io_loop.run_sync(database.close)


@pytest.fixture(scope="session")
def mongodb_uri():
    """A MongoDB that several server.py processes share: TEST_MONGODB_URI, else tests/mongo_wire.py (the
    wire protocol over mongomock) in a process of its own. Give each test a database of its own."""
    uri = os.environ.get("TEST_MONGODB_URI")
    if uri:
        yield uri.rstrip("/")
        return
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.mongo_wire"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    line = proc.stdout.readline()
    match = re.search(r"listening on (mongodb://\S+)", line)
    if match is None:
        proc.kill()
        raise RuntimeError(f"the wire-protocol double did not start: {line!r}")
    yield match.group(1)
    proc.terminate()
    proc.communicate(timeout=10)


def database_uri(mongodb_uri: str, stem: str) -> str:
    """A fresh database's URI on the shared server."""
    return f"{mongodb_uri}/videoflix_{stem}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def hasher():
    pool = PasswordHasher(rounds=4)
    yield pool
    pool.close()


@pytest.fixture
def run_types() -> tuple[str, ...]:
    """The job types the test server runs: mail only, so uploads wait queued (override to transcode)."""
    return ("mail",)


@pytest.fixture
def handler_modules():
    """Override to mount extra handlers in a module's tests."""
    from handlers.app import HANDLER_MODULES

    return HANDLER_MODULES


@pytest.fixture
def mailbox():
    """A real SMTP server on a loopback port, receiving the server's mails."""
    box = Mailbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture
def mail_settings(mailbox) -> dict[str, Any]:
    return {
        "backend": "smtp",
        "host": "127.0.0.1",
        "port": mailbox.port,
        "timeout_s": 2.0,
        "retry_base_s": 1.0,
        "max_attempts": 3,
    }


@pytest.fixture
def services(settings, db, clock, hasher, run_types, io_loop):
    """Every service, from the composition root, with the job queue running `run_types`."""
    built = build_services(settings, db, clock=clock, hasher=hasher, run_types=run_types, node="test-node")

    async def start() -> None:
        await built.start()

    io_loop.run_sync(start)
    yield built
    io_loop.run_sync(built.stop)


@pytest.fixture
def app(services, handler_modules):
    return make_app(services, handler_modules=handler_modules)


@dataclass
class Reply:
    """What a client sees: status, headers, and the JSON body."""

    code: int
    headers: Any
    body: bytes
    data: Any = field(default=None)

    @classmethod
    def of(cls, response: HTTPResponse) -> Reply:
        body = response.body or b""
        data = None
        if body and response.headers.get("Content-Type", "").startswith("application/json"):
            data = json.loads(body)
        return cls(response.code, response.headers, body, data)


class Api:
    """A JSON client over the real HTTP server on a loopback port."""

    def __init__(self, client, document: DocumentCheck | None = None) -> None:
        self.client = client
        self.token: str | None = None
        self.document = document

    async def request(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
    ) -> Reply:
        headers = dict(headers or {})
        token = token or self.token
        if token:
            headers.setdefault("Authorization", f"Token {token}")
        if json_body is not None:
            body = json.dumps(json_body)
            headers.setdefault("Content-Type", "application/json")
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        response = await self.client.fetch(
            path,
            method=method,
            body=body,
            headers=headers,
            raise_error=False,
            allow_nonstandard_methods=True,
            follow_redirects=False,
        )
        if self.document is not None:
            self.document.check(method, path, response.code, response.headers, response.body or b"")
        return Reply.of(response)

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, json_body: Any = None, **kw: Any) -> Reply:
        return await self.request("POST", path, json_body, **kw)

    async def put(self, path: str, json_body: Any = None, **kw: Any) -> Reply:
        return await self.request("PUT", path, json_body, **kw)

    async def patch(self, path: str, json_body: Any = None, **kw: Any) -> Reply:
        return await self.request("PATCH", path, json_body, **kw)

    async def delete(self, path: str, **kw: Any) -> Reply:
        return await self.request("DELETE", path, **kw)


@pytest.fixture
def api(http_server_client, handler_modules) -> Api:
    """The client; every answer it receives is checked against the app's OpenAPI document."""
    return Api(http_server_client, DocumentCheck.of(handler_modules))


async def make_token(services, email: str, *, staff: bool = False, verified: bool = True) -> str:
    """A login token for a new user."""
    user = await services.accounts.users.create(
        email,
        await services.hasher.hash("password123"),
        services.clock(),
        is_verified=verified,
        is_staff=staff,
    )
    return await services.accounts.issue_token(user)


async def run_due(queue) -> int:
    """One turn of a (stopped) job queue, waiting until the jobs it claimed have ended; how many ran."""
    await queue.turn()
    tasks = [running.task for running in queue.running.values() if running.task is not None]
    if tasks:
        await asyncio.wait(tasks)
    return len(tasks)


@pytest.fixture
def user_token(services, io_loop) -> str:
    return io_loop.run_sync(lambda: make_token(services, "viewer@example.com"))


@pytest.fixture
def staff_token(services, io_loop) -> str:
    return io_loop.run_sync(lambda: make_token(services, "staff@example.com", staff=True))


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    """Tiny clips made with FFmpeg's test sources, once per run."""
    from tests.media import make_clips

    return make_clips(tmp_path_factory.mktemp("clips"))
