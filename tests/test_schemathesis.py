"""schemathesis over the OpenAPI document, against the real server.py on a loopback port.

Every operation gets generated requests (a few by default; SCHEMATHESIS_EXAMPLES=N for more by hand),
with the token its access level asks for: staff operations the staff token, user operations a verified
user's. No answer may be a 500, and every answer must be what the document says: its status, its
content type and its body's schema.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from handlers.app import HANDLER_MODULES
from handlers.openapi import build_document
from tests.media import make_clip, multipart

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "6"))
# tus PATCH bodies are raw bytes in their own media type (handlers/tus.py)
schemathesis.openapi.media_type("application/offset+octet-stream", st.binary(max_size=256))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
STAFF = ("fuzz-staff@example.com", "a-staff-password")
PASSWORD = "a-user-password"


class Server:
    """server.py on a free loopback port, its output in a file (a pipe would fill and block it)."""

    def __init__(self, tmp: Path) -> None:
        from core.config import ENVIRONMENT

        env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT}
        env.update(
            SECRET_KEY="schemathesis-secret-key-long-enough-to-sign",
            ADMIN_EMAIL=STAFF[0],
            ADMIN_PASSWORD=STAFF[1],
            EMAIL_BACKEND="console",
            MEDIA_ROOT=str(tmp / "media"),
            HOST="127.0.0.1",
        )
        config = tmp / "config.yaml"
        config.write_text("accounts:\n  bcrypt_rounds: 4\n")
        self.log = tmp / "server.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "server.py"), "--port", "0", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )
        self.url = self.wait_for(r"listening on (http://\S+)").group(1).rstrip("/")

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 20, after: int = 0) -> re.Match:
        """The first match in the output past character `after`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.text()[after:])
            if match:
                return match
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"never saw {pattern!r}; output:\n{self.text()}")

    def call(
        self, method: str, path: str, body: Any = None, token: str | None = None, content_type: str = ""
    ) -> tuple[int, Any]:
        request = urllib.request.Request(self.url + path, method=method)
        if isinstance(body, bytes):
            request.data = body
            request.add_header("Content-Type", content_type)
        elif body is not None:
            request.data = json.dumps(body).encode()
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Token {token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


def verified_user(server: Server, email: str) -> str:
    """Sign up, follow the verify link from the console mail, and return the login token."""
    seen = len(server.text())
    server.call("POST", "/api/accounts/signup/", {"email": email, "password": PASSWORD})
    code = server.wait_for(r"/signup/verify\?code=([^\s&\"'<>]+)", after=seen).group(1)
    status, _ = server.call("GET", "/api/accounts/signup/verify/?code=" + urllib.parse.unquote(code))
    assert status == 200
    return server.call("POST", "/api/accounts/login/", {"email": email, "password": PASSWORD})[1]["token"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("schemathesis")
    running = Server(tmp)
    try:
        login = {"email": STAFF[0], "password": STAFF[1]}
        running.tokens = {
            "staff": running.call("POST", "/api/accounts/login/", login)[1]["token"],
            "user": verified_user(running, "fuzz-user@example.com"),
            # logging out revokes every token of its user: it gets a user of its own
            "logout": verified_user(running, "fuzz-logout@example.com"),
        }
        clip = make_clip(Path(tmp) / "fuzz.mp4", "160x120", 1.0, audio=False).read_bytes()
        running.known = known_ids(running, clip)
        yield running
    finally:
        running.stop()
    assert "Traceback" not in running.text(), running.text()


def known_ids(server: Server, clip: bytes) -> dict[str, str]:
    """Ids of things that exist, so that cases reach past the 404s: a category, a video (transcoded
    and streamable when it gets ready in time), its job, a mail, and a user (the logout one)."""
    staff = server.tokens["staff"]
    ids = {"category_id": server.call("POST", "/api/categories/", {"name": "Fuzz"}, staff)[1]["id"]}
    body, content_type = multipart({"title": "Fuzz clip"}, clip)
    video = server.call("POST", "/api/videos/", body, staff, content_type)[1]
    ids["video_id"] = video["id"]
    deadline = time.monotonic() + 30
    while video["status"] != "ready" and time.monotonic() < deadline:
        time.sleep(0.5)
        video = server.call("GET", f"/api/videos/{video['id']}/", token=staff)[1]
    if video["hls_url"]:
        ids.update(grant=video["hls_url"].split("/")[3], name="master.m3u8", file="index.m3u8")
        ids["height"] = str(video["renditions"][0]["height"])
    ids["job_id"] = server.call("GET", "/api/admin/jobs/?type=transcode", token=staff)[1]["results"][0]["id"]
    ids["mail_id"] = server.call("GET", "/api/admin/mail/", token=staff)[1]["results"][0]["id"]
    ids["user_id"] = server.call("GET", "/api/accounts/users/me/", token=server.tokens["logout"])[1]["id"]
    return ids


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(server.url + "/api/schema/")


def token_for(server: Server, operation: dict[str, Any], path: str) -> str | None:
    """The token the operation's access level asks for (none for public operations)."""
    level = operation.get("x-access")
    if level is None:
        return None
    return server.tokens["logout" if "/logout/" in path else level]


# The operations, known without a server: the document is generated from the code. Deletions last,
# so that the other operations meet the known things while they exist.
OPERATIONS = sorted(
    (
        (method.upper(), path)
        for path, item in build_document(HANDLER_MODULES, version="0")["paths"].items()
        for method in item
    ),
    key=lambda operation: operation[0] == "DELETE",
)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_answers_as_documented_and_never_500(api_schema, server, method, path):
    operation = api_schema[path][method]
    token = token_for(server, operation.definition.raw, path)
    headers = {"Authorization": f"Token {token}"} if token else {}

    valid_and_invalid = operation.as_strategy() | operation.as_strategy(GenerationMode.NEGATIVE)
    names = [p["name"] for p in operation.definition.raw.get("parameters", []) if p["in"] == "path"]
    if names and all(name in server.known for name in names):
        existing = {name: server.known[name] for name in names}
        valid_and_invalid |= operation.as_strategy(path_parameters=existing)

    @given(case=valid_and_invalid)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def answers_as_documented(case) -> None:
        # Negative cases may carry a garbage Host header: Tornado's HTTP layer refuses it with a bare 400
        # before any handler runs (RFC 9112 3.2), which is HTTP framing, not an answer of this API.
        if case.headers:
            case.headers = {k: v for k, v in case.headers.items() if k.lower() != "host"}
        case.call_and_validate(base_url=server.url, headers=headers, checks=CHECKS, timeout=10)

    answers_as_documented()
