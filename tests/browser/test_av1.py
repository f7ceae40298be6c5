"""AV1 and DASH in a real browser: Debian's Chromium, driven by Playwright, against server.py.

Staff upload a 10 s clip; once its H.264 ladder is ready the AV1 follow-up job lists the AV1 rungs.
Then hls.js (web/vendor/hls.min.js) plays an av01 level of the master for ≥ 5 s, and dash.js
(web/vendor/dash.all.min.js) plays the MPD for ≥ 5 s. The page (tests/browser/av1_page.html) is served
by the test at the server's own origin (Playwright's routing), so the web app is not involved.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.error import HTTPError

import pytest

from tests.mailbox import free_port
from tests.media import make_clip, multipart

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.is_file():
    pytest.skip(
        f"no Chromium at {CHROMIUM} (Debian's `chromium` package; .ci/run installs it when it can)",
        allow_module_level=True,
    )

from playwright.sync_api import Page, sync_playwright  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PAGE = Path(__file__).with_name("av1_page.html")
PAGE_PATH = "/__av1_check__.html"  # answered by the test's route, never by the server
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--autoplay-policy=no-user-gesture-required",
]
ADMIN = ("staff@example.com", "staff-password-1")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


class Server:
    """server.py on a free loopback port (segments of 2 s, AV1 after every ladder), its log in a file."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = folder / "config.yaml"
        config.write_text(
            "accounts:\n  bcrypt_rounds: 4\n"
            "transcode:\n  workers: 1\n  preset: ultrafast\n  segment_s: 2\n  av1: after\n"
            "jobs:\n  poll_interval_s: 0.2\n"
        )
        from core.config import ENVIRONMENT

        env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT}
        env.update(
            SECRET_KEY="browser-test-secret-key-0123456789",
            MEDIA_ROOT=str(folder / "media"),
            ADMIN_EMAIL=ADMIN[0],
            ADMIN_PASSWORD=ADMIN[1],
            EMAIL_BACKEND="console",
        )
        self.log = folder / "server.log"
        self.log_file = self.log.open("w")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, str(ROOT / "server.py")),
                *("--host", "127.0.0.1", "--port", str(self.port), "--config", str(config)),
            ],
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
        deadline = time.monotonic() + 30
        while "listening on" not in self.log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server.py did not start:\n{self.log.read_text()}")
            time.sleep(0.1)

    def call(self, method: str, path: str, body=None, *, token=None, content_type=None):
        headers = {"Authorization": f"Token {token}"} if token else {}
        if isinstance(body, dict):
            body, content_type = json.dumps(body).encode(), "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log_file.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("av1-server"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def av1_video(server, tmp_path_factory):
    """A ready video whose master and MPD list AV1 beside H.264 (10 s, 360p: rungs 120p and 360p)."""
    status, reply = server.call("POST", "/api/accounts/login/", {"email": ADMIN[0], "password": ADMIN[1]})
    assert status == 200, reply
    token = reply["token"]
    clip = make_clip(tmp_path_factory.mktemp("av1-clip") / "clip.mp4", "640x360", seconds=10)
    body, content_type = multipart({"title": "AV1 check"}, clip.read_bytes(), "clip.mp4")
    status, video = server.call("POST", "/api/videos/", body, token=token, content_type=content_type)
    assert status == 201, video
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        _, video = server.call("GET", f"/api/videos/{video['id']}/", token=token)
        assert video["status"] != "failed", video["error"]
        if "av01" in video.get("codecs", []):
            return video
        time.sleep(0.5)
    raise AssertionError(f"AV1 never listed:\n{server.log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context()
    tab = context.new_page()
    tab.route(
        server.url + PAGE_PATH,
        lambda route: route.fulfill(status=200, content_type="text/html", body=PAGE.read_text()),
    )
    tab.goto(server.url + PAGE_PATH)
    yield tab
    context.close()


def played_for(page: Page, seconds: float, timeout_s: float = 60) -> dict:
    """Wait until the video has played `seconds`; what the page reported."""
    page.wait_for_function(
        f"document.getElementById('video').currentTime >= {seconds} || window.report.errors.length > 0",
        timeout=timeout_s * 1000,
    )
    report = page.evaluate("window.report")
    assert report["errors"] == [], report
    assert page.evaluate("document.getElementById('video').currentTime") >= seconds
    return report


def test_hls_js_plays_an_av01_level_of_the_master_for_five_seconds(page, av1_video):
    page.evaluate("url => window.playHlsAv1(url)", av1_video["hls_url"])
    report = played_for(page, 5)
    assert any(codec.startswith("avc1") for codec in report["levels"])  # H.264 beside it
    assert page.evaluate("hls.levels[hls.currentLevel].videoCodec").startswith("av01")
    assert report["codec"].startswith("av01")
    assert page.evaluate("video => !video.paused && video.videoWidth > 0", page.query_selector("#video"))


def test_dash_js_plays_the_mpd_for_five_seconds(page, av1_video):
    assert av1_video["dash_url"]
    page.evaluate("url => window.playDash(url)", av1_video["dash_url"])
    report = played_for(page, 5)
    assert "av01." in report["codec"] or "avc1." in report["codec"]  # e.g. video/mp4;codecs="av01.0.00M.08"
    assert page.evaluate("video => video.videoWidth > 0", page.query_selector("#video"))
