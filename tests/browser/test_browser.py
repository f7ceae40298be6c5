"""The reference web app in a real browser: Debian's Chromium, driven by Playwright, against server.py.

A new user signs up in the page, follows the link the mail really brought (SMTP, in-process), logs
in, watches a video that staff uploaded, switches quality and resumes after a reload; staff upload a
clip through the page and watch it become ready. Screenshots go to test-artifacts/ (desktop and phone).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.error import HTTPError

import pytest
import yaml

from tests.mailbox import Mailbox, free_port, link_in
from tests.media import make_clip, multipart

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.is_file():
    pytest.skip(
        f"no Chromium at {CHROMIUM} (Debian's `chromium` package; .ci/run installs it when it can)",
        allow_module_level=True,
    )

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
ADMIN = ("staff@example.com", "staff-password-1")
PHONE = {"width": 390, "height": 844}

pytestmark = [pytest.mark.slow, pytest.mark.timeout(170)]


class Server:
    """server.py on a free loopback port, its log in a file."""

    def __init__(
        self,
        folder: Path,
        mail_port: int | None,
        accounts: dict[str, str] | None = None,
        transcode: dict[str, object] | None = None,
    ) -> None:
        """`mail_port`: the test mailbox's SMTP port (None: mails go to the log); `accounts` and
        `transcode`: settings over the tests' own."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = folder / "config.yaml"
        settings = {
            "accounts": {"bcrypt_rounds": 4, **(accounts or {})},
            # No AV1 follow-up jobs unless asked (tests/browser/test_av1.py): they would take the 2 cores.
            "transcode": {"workers": 1, "preset": "ultrafast", "av1": "off", **(transcode or {})},
            "jobs": {"poll_interval_s": 0.2},
        }
        config.write_text(yaml.safe_dump(settings))
        from core.config import ENVIRONMENT

        env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT}
        env.update(
            SECRET_KEY="browser-test-secret-key-0123456789",
            MEDIA_ROOT=str(folder / "media"),
            FRONTEND_URL=self.url,
            ADMIN_EMAIL=ADMIN[0],
            ADMIN_PASSWORD=ADMIN[1],
            EMAIL_BACKEND="console",
        )
        if mail_port is not None:
            env.update(EMAIL_BACKEND="smtp", EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(mail_port))
        config_flag = ("--config", str(config))
        self.log = folder / "server.log"
        self.log_file = self.log.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "server.py"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                *config_flag,
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

    def call(
        self, method: str, path: str, body: bytes | dict | None = None, *, token=None, content_type=None
    ):
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

    def wait_until_ready(self, video_id: str, token: str, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, video = self.call("GET", f"/api/videos/{video_id}/", token=token)
            if video["status"] in ("ready", "failed"):
                assert video["status"] == "ready", video["error"]
                return video
            time.sleep(0.5)
        raise AssertionError(f"video {video_id} not ready in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log_file.close()


@pytest.fixture(scope="module")
def mailbox():
    box = Mailbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser-clips")
    return {
        # 360 rows: two rungs (120p, 360p), so there is a quality to switch to; long enough to resume in
        "feature": make_clip(folder / "feature.mp4", "640x360", seconds=20),
        "short": make_clip(folder / "short.mp4", "320x240", seconds=2),
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory, mailbox):
    running = Server(tmp_path_factory.mktemp("browser-server"), mailbox.port)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def staff_token(server):
    status, reply = server.call("POST", "/api/accounts/login/", {"email": ADMIN[0], "password": ADMIN[1]})
    assert status == 200, reply
    return reply["token"]


@pytest.fixture(scope="module")
def category(server, staff_token):
    status, reply = server.call("POST", "/api/categories/", {"name": "Test patterns"}, token=staff_token)
    assert status == 201, reply
    return reply


@pytest.fixture(scope="module")
def ready_video(server, staff_token, category, clips):
    """A ready video, uploaded as any client would (multipart, staff token)."""
    fields = {
        "title": "Test pattern feature",
        "description": "Colour bars and a tone.",
        "category": category["id"],
    }
    body, content_type = multipart(fields, clips["feature"].read_bytes(), "feature.mp4")
    status, video = server.call("POST", "/api/videos/", body, token=staff_token, content_type=content_type)
    assert status == 201, video
    return server.wait_until_ready(video["id"], staff_token)


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A desktop page; whatever the Content-Security-Policy refused on it fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    refused: list[str] = []
    page.on(
        "console", lambda message: refused.append(message.text) if "Security Policy" in message.text else None
    )
    yield page
    context.close()
    assert not refused, refused


def shoot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def log_in(page: Page, server: Server, email: str, password: str) -> None:
    page.goto(server.url + "/#/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#catalogue")).to_be_visible()


def wait_until(page: Page, expression: str, timeout: float = 30_000) -> None:
    """Poll a JavaScript expression until it is true (milliseconds). Playwright's wait_for_function
    evaluates strings with eval, which the pages' Content-Security-Policy refuses; evaluate does not."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout / 1000:.0f} s: {expression}")
        page.wait_for_timeout(100)


def current_time(page: Page) -> float:
    return page.evaluate("document.querySelector('#player')?.currentTime")


def test_a_new_user_signs_up_verifies_from_the_mail_and_watches_switches_quality_and_resumes(
    page, server, mailbox, ready_video, category
):
    email, password = "viewer@example.com", "viewer-password-1"
    page.goto(server.url + "/")
    page.get_by_role("link", name="Sign up").first.click()
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_label("First name").fill("Vera")
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("#notice")).to_contain_text(f"We sent a link to {email}")

    # The link in the real mail leads to this very app, which verifies the address.
    link = link_in(_wait_for_mail(mailbox, email))
    assert link.startswith(server.url + "/signup/verify?code=")
    page.goto(link)
    expect(page.locator("#notice")).to_contain_text("Email address verified.")

    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill("a-wrong-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#notice")).to_contain_text("Unable to login with provided credentials.")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()

    row = page.locator(f"#category-{category['slug']}")
    expect(row.get_by_role("heading")).to_have_text(category["name"])
    tile = row.locator(f'[data-video="{ready_video["id"]}"]')
    expect(tile).to_contain_text(ready_video["title"])
    expect(tile.locator("img")).to_have_js_property("complete", True)
    assert tile.locator("img").evaluate("img => img.naturalWidth") > 0, "the thumbnail shows"
    shoot(page, "catalogue-desktop")

    tile.click()  # the details page, then Play
    expect(page.get_by_role("heading", name=ready_video["title"])).to_be_visible()
    expect(page.locator("#details .description")).to_have_text(ready_video["description"])
    page.locator("#play").click()
    wait_until(page, "document.querySelector('#player')?.currentTime >= 5", timeout=30_000)
    shoot(page, "player-desktop")

    choose_120p(page)
    before = current_time(page)
    wait_until(page, f"document.querySelector('#player')?.currentTime > {before + 0.5}", timeout=15_000)

    paused = page.evaluate(
        "(() => { const p = document.querySelector('#player'); p.pause(); return p.currentTime; })()"
    )
    # Pausing saves the position (unless the 5 s save just wrote one within half a second of it).
    wait_until(page, f"Math.abs(Number(document.querySelector('#saved')?.dataset.position) - {paused}) < 0.6")
    saved = float(page.locator("#saved").get_attribute("data-position"))
    assert saved >= 5
    status, progress = server.call("GET", f"/api/videos/{ready_video['id']}/progress/", token=_token(page))
    assert (status, progress["position"]) == (200, saved)

    page.reload()
    wait_until(page, "document.querySelector('#player')?.currentTime > 0", timeout=20_000)
    assert saved - 1 <= current_time(page) <= saved + 4, "the player resumes where the viewer paused"

    page.goto(server.url + "/#/")
    expect(page.locator("#continue").get_by_text(ready_video["title"])).to_be_visible()


def choose_120p(page: Page) -> None:
    """Switch to the 120p rung with whichever player the page has: a <select id=quality> (the
    reference one) or the player's own quality menu (tests/browser/test_player.py tests it fully)."""
    quality = page.locator("#quality")
    if quality.evaluate("node => node.tagName") == "SELECT":
        assert quality.locator("option").all_text_contents() == ["Auto", "120p", "360p"]
        quality.select_option(label="120p")
        expect(page.locator("#playing-level")).to_have_text("Playing 120p")
    else:
        page.locator("#vp").hover()  # the controls hide while a video plays untouched
        quality.click()
        page.locator("#quality-menu").get_by_role("menuitemradio", name="120p").click()
        expect(quality).to_have_text("120p")
        wait_until(page, "document.querySelector('#vp')?.dataset.rendition === '120p'", timeout=15_000)


def test_the_catalogue_and_the_player_fit_a_phone_screen(browser, server, staff_token, ready_video):
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = context.new_page()
    try:
        log_in(page, server, *ADMIN)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], (
            "no sideways scrolling"
        )
        shoot(page, "catalogue-phone")
        page.locator(f'.tile[data-video="{ready_video["id"]}"]').first.click()
        page.locator("#play").click()
        wait_until(page, "document.querySelector('#player')?.currentTime > 1", timeout=30_000)
        width = page.locator("#player").bounding_box()["width"]
        assert 300 <= width <= PHONE["width"]
        shoot(page, "player-phone")
    finally:
        context.close()


def test_staff_upload_a_clip_through_the_page_and_see_it_become_ready(page, server, clips, category):
    log_in(page, server, *ADMIN)
    page.get_by_role("link", name="Upload").click()
    page.get_by_label("File").set_input_files(str(clips["short"]))
    page.get_by_label("Title").fill("Uploaded from the page")
    page.get_by_label("Category").select_option(label=category["name"])
    # Resumable (tus) when the server offers /api/uploads/, else one multipart request: the page says which.
    with urllib.request.urlopen(
        urllib.request.Request(server.url + "/api/uploads/", method="OPTIONS")
    ) as offered:
        resumable = offered.headers.get("Tus-Resumable") is not None
    expect(page.get_by_text("Resumable:" if resumable else "One request:")).to_be_visible()
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-percent")).to_contain_text("100 %", timeout=30_000)
    expect(page.locator("#video-status")).to_have_attribute("data-status", "ready", timeout=90_000)
    shoot(page, "upload-ready")

    page.get_by_role("link", name="Watch “Uploaded from the page”").click()
    wait_until(page, "document.querySelector('#player')?.currentTime > 0.5", timeout=30_000)


def tus_offered(server: Server) -> bool:
    with urllib.request.urlopen(
        urllib.request.Request(server.url + "/api/uploads/", method="OPTIONS")
    ) as reply:
        return reply.headers.get("Tus-Resumable") is not None


def test_a_resumable_upload_cut_by_a_reload_continues_when_the_same_file_is_chosen_again(
    page, server, clips, staff_token
):
    assert tus_offered(server), "the server offers tus at /api/uploads/, so the page must resume with it"
    log_in(page, server, *ADMIN)
    page.goto(server.url + "/#/upload")
    cdp = page.context.new_cdp_session(page)
    throttled = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 150_000}
    cdp.send("Network.emulateNetworkConditions", throttled)
    page.get_by_label("File").set_input_files(str(clips["feature"]))
    page.get_by_label("Title").fill("Resumed after a reload")
    page.get_by_role("button", name="Upload").click()
    wait_until(page, "document.querySelector('#upload-progress')?.value >= 20", timeout=30_000)
    page.reload()  # the upload is cut half-way

    cdp.send("Network.emulateNetworkConditions", {**throttled, "uploadThroughput": -1})
    page.get_by_label("File").set_input_files(str(clips["feature"]))
    page.get_by_label("Title").fill("Resumed after a reload")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#notice")).to_contain_text(
        re.compile("Resuming the earlier upload of this file|resumed from the earlier upload of this file")
    )
    expect(page.locator("#video-status")).to_have_attribute("data-status", "ready", timeout=90_000)
    _, videos = server.call("GET", "/api/videos/?search=Resumed", token=staff_token)
    assert [v["title"] for v in videos] == ["Resumed after a reload"], "one video, not two"


def test_an_api_error_is_shown_as_its_sentence(page, server):
    page.goto(server.url + "/signup/verify?code=not-a-real-code")
    expect(page.locator("#notice")).to_have_text("Unable to verify user.")
    expect(page.get_by_label("Link or code from the mail")).to_be_visible()


def _wait_for_mail(mailbox: Mailbox, address: str):
    deadline = time.monotonic() + 15
    while not mailbox.to(address):
        assert time.monotonic() < deadline, f"no mail to {address}"
        time.sleep(0.05)
    return mailbox.to(address)[-1]


def _token(page: Page) -> str:
    return page.evaluate("localStorage.getItem('videoflix.token')")


def test_the_docs_page_lists_the_api_and_authorize_with_a_token_works_across_a_reload(
    page, server, staff_token
):
    page.goto(server.url + "/api/docs/")
    me = page.locator(".opblock", has=page.locator('[data-path="/api/accounts/users/me/"]')).first
    expect(me).to_be_visible(timeout=20_000)
    page.locator("button.authorize").first.click()
    page.locator(".modal-ux input[type=text]").first.fill(staff_token)  # a bare token: the page adds "Token "
    page.locator(".modal-ux button.authorize").first.click()
    page.locator(".modal-ux button.btn-done").first.click()

    page.reload()  # persistAuthorization keeps the token
    me = page.locator(".opblock", has=page.locator('[data-path="/api/accounts/users/me/"]')).first
    me.locator(".opblock-summary").first.click()
    # tryItOutEnabled: the operation opens ready to run
    me.get_by_role("button", name="Execute").click()
    expect(me.locator(".live-responses-table tbody .response-col_status").first).to_have_text("200")
    expect(me.locator(".live-responses-table .highlight-code").first).to_contain_text(ADMIN[0])
    shoot(page, "docs-desktop")
