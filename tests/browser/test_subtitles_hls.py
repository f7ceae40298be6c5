"""Subtitles in a real player: the vendored hls.js in Debian's Chromium (Playwright) against server.py
shows the cues of an uploaded SRT at their own times, from the segmented WebVTT rendition."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.mailbox import free_port
from tests.media import make_clip, multipart

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.is_file():
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STAFF = ("staff@example.com", "staff-password-1")
SRT = (
    "1\n00:00:00,500 --> 00:00:00,900\nAlpha\n\n"
    "2\n00:00:02,250 --> 00:00:02,750\nBravo\n\n"
    "3\n00:00:04,500 --> 00:00:05,500\nCharlie\n"
)
PLAY = """(src) => new Promise((ready) => {
  const video = document.createElement('video');
  video.muted = true;
  document.body.appendChild(video);
  const hls = new Hls();
  window.video = video;
  hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, () => { hls.subtitleDisplay = true; hls.subtitleTrack = 0; });
  hls.on(Hls.Events.MANIFEST_PARSED, () => { video.play(); ready(); });
  hls.loadSource(src);
  hls.attachMedia(video);
})"""
CUES = """() => Array.from(window.video.textTracks).filter((t) => t.kind === 'subtitles')
  .map((t) => ({label: t.label, mode: t.mode,
                cues: t.cues ? Array.from(t.cues).map((c) => [c.startTime, c.endTime, c.text]) : []}))"""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(170)]


def call(url: str, method: str, path: str, body=None, token=None, content_type="application/json"):
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    if token:
        request.add_header("Authorization", f"Token {token}")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read() or b"null")


@pytest.fixture
def server(tmp_path):
    """server.py with 1 s segments on a free loopback port, and a staff token."""
    from core.config import ENVIRONMENT

    config = tmp_path / "config.yaml"
    config.write_text(
        "accounts:\n  bcrypt_rounds: 4\ntranscode:\n  workers: 1\n  preset: ultrafast\n  segment_s: 1\n"
        "jobs:\n  poll_interval_s: 0.2\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT}
    env.update(
        SECRET_KEY="subtitle-browser-test-secret-0123456789",
        MEDIA_ROOT=str(tmp_path / "media"),
        ADMIN_EMAIL=STAFF[0],
        ADMIN_PASSWORD=STAFF[1],
        EMAIL_BACKEND="console",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "server.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "server.py"), "--port", str(port), "--config", str(config)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    call(url, "GET", "/api/health/")
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            login = {"email": STAFF[0], "password": STAFF[1]}
            yield url, call(url, "POST", "/api/accounts/login/", login)["token"]
        finally:
            process.terminate()
            process.wait(15)


def test_hls_js_shows_each_cue_of_an_uploaded_srt_at_its_time(server, tmp_path):
    url, token = server
    body, content_type = multipart(
        {"title": "Subtitled"}, make_clip(tmp_path / "c.mp4", "320x240", 6.0).read_bytes()
    )
    video_id = call(url, "POST", "/api/videos/", body, token, content_type)["id"]
    deadline = time.monotonic() + 90
    while call(url, "GET", f"/api/videos/{video_id}/", token=token)["status"] != "ready":
        assert time.monotonic() < deadline, "the clip never got ready"
        time.sleep(0.2)
    fields = {"language": "en", "label": "English", "default": "true"}
    body, content_type = multipart(fields, SRT.encode(), filename="en.srt")
    call(url, "POST", f"/api/videos/{video_id}/subtitles/", body, token, content_type)
    hls_url = call(url, "GET", f"/api/videos/{video_id}/", token=token)["hls_url"]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            page = browser.new_page()
            page.goto(url + "/static/vendor/VERSIONS")  # same origin, nothing else running
            page.add_script_tag(url=url + "/static/vendor/hls.min.js")
            page.evaluate(PLAY, url + hls_url)
            page.wait_for_function(
                "() => Array.from(window.video.textTracks).some((t) => t.cues && t.cues.length >= 3)",
                timeout=30_000,
            )
            [track] = page.evaluate(CUES)
        finally:
            browser.close()
    assert (track["label"], track["mode"]) == ("English", "showing")
    assert track["cues"] == [[0.5, 0.9, "Alpha"], [2.25, 2.75, "Bravo"], [4.5, 5.5, "Charlie"]]
