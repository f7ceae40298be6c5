"""A first run with the defaults: the verify link a newcomer is mailed points at the server's own web
app (where something listens), and the seed front-end's dev server may still call the API."""

from __future__ import annotations

import json
import re
import urllib.request

from core.config import Settings, load_settings
from services.container import link_base
from tests.test_server import Running, config_file  # noqa: F401 (a fixture)


def call(url: str, method: str = "GET", body: dict | None = None, headers: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, dict(answer.headers), answer.read()


def test_the_mailed_verify_link_of_a_default_server_points_at_its_own_web_app(config_file):
    running = Running("--port", "0", "--config", str(config_file))
    try:
        url = running.wait_for(r"listening on (http://\S+)").group(1)
        status, _, _ = call(
            url + "/api/accounts/signup/", "POST", {"email": "new@example.com", "password": "a-long-password"}
        )
        assert status == 201
        link = running.wait_for(r"(http://\S+/signup/verify\?code=[^\s\"<>]+)").group(1)
        assert link.startswith(f"{url}/signup/verify?code=")
        status, headers, _ = call(link)  # something listens there: the web app, which verifies
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        status, headers, _ = call(
            url + "/api/accounts/login/",
            "OPTIONS",
            headers={"Origin": "http://localhost:4200", "Access-Control-Request-Method": "POST"},
        )
        assert headers.get("Access-Control-Allow-Origin") == "http://localhost:4200"
    finally:
        running.stop()


def test_links_follow_frontend_url_then_public_url_then_the_listening_address():
    assert Settings().server.frontend_url is None
    assert link_base(Settings().server) == "http://127.0.0.1:8000"
    assert link_base(Settings().server, "http://127.0.0.1:8731") == "http://127.0.0.1:8731"
    public = load_settings(None, environ={"PUBLIC_URL": "https://videos.example.com"})
    assert link_base(public.server, "http://127.0.0.1:8731") == "https://videos.example.com"
    front = load_settings(None, environ={"FRONTEND_URL": "https://app.example.com", "HOST": "0.0.0.0"})
    assert link_base(front.server, "http://localhost:8000") == "https://app.example.com"
    wildcard = load_settings(None, environ={"HOST": "0.0.0.0", "PORT": "8000"})
    assert link_base(wildcard.server) == "http://localhost:8000"
    assert re.match(r"^http://\[::1\]:8000$", link_base(load_settings(None, environ={"HOST": "::1"}).server))
