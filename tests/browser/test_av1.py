"""AV1 and DASH in a real browser: Debian's Chromium, driven by Playwright, against server.py.

Staff upload a 10 s clip; once its H.264 ladder is ready the AV1 follow-up job lists the AV1 rungs.
Then hls.js (web/vendor/hls.min.js) plays an av01 level of the master for ≥ 5 s, and dash.js
(web/vendor/dash.all.min.js) plays the MPD for ≥ 5 s. The page (tests/browser/av1_page.html) is served
by the test at the server's own origin (Playwright's routing), so the web app is not involved.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.media import make_clip, multipart

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.is_file():
    pytest.skip(
        f"no Chromium at {CHROMIUM} (Debian's `chromium` package; .ci/run installs it when it can)",
        allow_module_level=True,
    )

from playwright.sync_api import Page, sync_playwright  # noqa: E402

from tests.browser.test_browser import ADMIN, Server  # noqa: E402

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

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # segments of 2 s, and AV1 after every ladder
    running = Server(tmp_path_factory.mktemp("av1-server"), None, transcode={"segment_s": 2, "av1": "after"})
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
