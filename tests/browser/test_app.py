"""The web app as a product, in Chromium against server.py: browse, search, details, account, staff tools.

One server and two short ready videos serve the whole module; each test opens its own page. Where a
part of the API comes from another branch this round (My list, popular, stats), the page hides it
when the server answers 404, and the tests say what they saw. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.browser.test_browser import (
    ADMIN,
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    Server,
    _wait_for_mail,
    log_in,
    shoot,
    wait_until,
)
from tests.mailbox import Mailbox, link_in
from tests.media import make_clip, multipart

pytestmark = [pytest.mark.slow, pytest.mark.timeout(170)]
PHONE = {"width": 375, "height": 812}


@pytest.fixture(scope="module")
def mailbox():
    box = Mailbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, mailbox):
    # Many logins and signups from one address in a few minutes: the limits are not what is tested here.
    limits = {
        "rate_limit_login": "1000/60",
        "rate_limit_signup": "1000/3600",
        "rate_limit_password_reset": "1000/3600",
    }
    running = Server(tmp_path_factory.mktemp("app-server"), mailbox.port, accounts=limits)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def staff_token(server):
    status, reply = server.call("POST", "/api/accounts/login/", {"email": ADMIN[0], "password": ADMIN[1]})
    assert status == 200, reply
    return reply["token"]


@pytest.fixture(scope="module")
def catalogue(server, staff_token, tmp_path_factory):
    """Two categories and two ready videos (short clips, so the transcodes are quick)."""
    folder = tmp_path_factory.mktemp("app-clips")
    made = {}
    for name in ("Nature", "Science"):
        status, reply = server.call("POST", "/api/categories/", {"name": name}, token=staff_token)
        assert status == 201, reply
        made[name] = reply
    videos = []
    for title, description, category, size in [
        (
            "Ocean waves at dawn",
            "Slow breakers roll onto a quiet beach as the sun comes up.",
            "Nature",
            "640x360",
        ),
        (
            "How rockets fly",
            "Thrust, drag and the rocket equation, explained with bars.",
            "Science",
            "480x270",
        ),
    ]:
        clip = make_clip(folder / f"{len(videos)}.mp4", size, seconds=3)
        fields = {"title": title, "description": description, "category": made[category]["id"]}
        body, content_type = multipart(fields, clip.read_bytes(), clip.name)
        status, video = server.call(
            "POST", "/api/videos/", body, token=staff_token, content_type=content_type
        )
        assert status == 201, video
        videos.append(video)
    ready = [server.wait_until_ready(v["id"], staff_token) for v in videos]
    return {"categories": made, "videos": ready}


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
    """A desktop page; anything the Content-Security-Policy refused, and any page error, fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if "Security Policy" in m.text else None)
    page.on("pageerror", lambda err: problems.append(str(err)))
    yield page
    context.close()
    assert not problems, problems


def viewer(server, mailbox, email: str, password: str = "viewer-password-1") -> str:
    """A verified viewer (signed up and verified through the API, as the mail says); their token."""
    status, reply = server.call("POST", "/api/accounts/signup/", {"email": email, "password": password})
    assert status == 201, reply
    code = link_in(_wait_for_mail(mailbox, email)).split("code=")[1]
    status, reply = server.call("GET", f"/api/accounts/signup/verify/?code={code}")
    assert status == 200, reply
    return reply["token"]


def notice(page: Page):
    return page.locator("#notice")


def test_the_home_page_has_a_hero_and_rows_of_equal_poster_tiles_with_durations(page, server, catalogue):
    log_in(page, server, *ADMIN)
    expect(page.locator("#hero h1")).to_have_text(catalogue["videos"][-1]["title"])  # the newest
    nature = page.locator("#category-nature")
    expect(nature.get_by_role("heading", name="Nature")).to_be_visible()
    newest = page.locator("#newest .tile-title")
    expect(newest).to_have_text([v["title"] for v in reversed(catalogue["videos"])])  # newest first
    tiles = page.locator("#catalogue .tile")
    expect(tiles).to_have_count(4)  # each video in its category's row and in "New on Videoflix"
    for index in range(4):
        expect(tiles.nth(index).locator("img")).to_have_js_property("complete", True)
        assert tiles.nth(index).locator("img").evaluate("i => i.naturalWidth") > 0, "the poster shows"
        expect(tiles.nth(index).locator(".duration")).to_have_text("0:03")
    widths = {round(tiles.nth(i).bounding_box()["width"]) for i in range(4)}
    assert len(widths) == 1, f"tiles of one width, not {widths}"
    fit = page.locator(".poster img").first.evaluate("i => getComputedStyle(i).objectFit")
    assert fit == "cover", "posters are cropped, not squeezed"
    shoot(page, "app-home-desktop")

    # Keyboard alone: Tab reaches a tile and shows where the focus is; Enter opens its details.
    page.locator("#category-nature .cards").focus()
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.className")
    assert "tile" in focused or "icon" in focused
    page.locator("#category-nature .tile").first.focus()
    assert page.evaluate("getComputedStyle(document.activeElement).boxShadow") != "none", "focus is visible"
    page.keyboard.press("Enter")
    expect(page.locator("#details h1")).to_have_text("Ocean waves at dawn")


def test_the_home_page_fits_a_375_pixel_phone(browser, server, catalogue):
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = context.new_page()
    try:
        log_in(page, server, *ADMIN)
        expect(page.locator("#hero")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], (
            "no sideways page scroll"
        )
        box = page.locator("#catalogue .tile").first.bounding_box()
        assert 120 <= box["width"] <= 200, box
        shoot(page, "app-home-phone")
    finally:
        context.close()


def test_search_shows_results_while_one_types_without_pressing_enter(page, server, catalogue):
    log_in(page, server, *ADMIN)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "search=" in r.url else None)
    page.get_by_label("Search videos").press_sequentially("rocket", delay=40)
    results = page.locator("#search-results")
    expect(results.locator(".tile")).to_have_count(1)
    expect(results).to_contain_text("How rockets fly")
    assert 1 <= len(asked) <= 2, f"debounced: one request for the word, not one per key ({asked})"
    shoot(page, "app-search")

    page.get_by_label("Search videos").fill("no such words anywhere")
    expect(page.locator("#no-results")).to_have_text("Nothing matches “no such words anywhere”.")
    page.get_by_label("Search videos").fill("ocean")
    expect(results.locator(".tile-title")).to_have_text(["Ocean waves at dawn"])
    results.locator(".tile").click()
    expect(page.locator("#details h1")).to_have_text("Ocean waves at dawn")
    expect(page.get_by_label("Search videos")).to_have_value("")


def test_the_details_page_shows_description_category_my_list_and_plays(
    page, server, mailbox, catalogue, staff_token
):
    video = catalogue["videos"][0]
    chapters = [{"start": 0, "title": "Dawn"}, {"start": 1.5, "title": "The first wave"}]
    status, _ = server.call(
        "PUT",
        f"/api/videos/{video['id']}/chapters/",
        json.dumps(chapters).encode(),
        token=staff_token,
        content_type="application/json",
    )
    token = viewer(server, mailbox, "details@example.com")
    has_mylist = server.call("GET", "/api/videos/mylist/", token=token)[0] == 200
    log_in(page, server, "details@example.com", "viewer-password-1")
    page.goto(f"{server.url}/#/title/{video['id']}")
    details = page.locator("#details")
    expect(details.locator("h1")).to_have_text(video["title"])
    expect(details.locator(".meta")).to_contain_text("Nature · 0:03")
    expect(details.locator(".description")).to_have_text(video["description"])
    if status == 200:
        expect(details.locator(".chapters li")).to_have_text(["0:00 Dawn", "0:02 The first wave"])
    else:
        expect(details.locator(".chapters")).to_have_count(0)
    toggle = page.locator("#mylist-toggle")
    if has_mylist:
        toggle.click()
        expect(toggle).to_have_attribute("aria-pressed", "true")
        expect(notice(page)).to_have_text(f"Added “{video['title']}” to My list.")
        page.goto(server.url + "/#/")
        expect(page.locator("#mylist .tile")).to_have_count(1)
        page.goto(f"{server.url}/#/title/{video['id']}")
    else:
        expect(toggle).to_have_count(0)  # the server has no My list yet: no button that fails
    expect(page.locator("#edit-video")).to_have_count(0)  # no staff tools for a viewer
    shoot(page, "app-details")
    page.locator("#play").click()
    wait_until(page, "document.querySelector('#player')?.currentTime > 0.5", timeout=30_000)


def test_a_viewer_changes_the_password_on_the_profile_page(page, server, mailbox, catalogue):
    viewer(server, mailbox, "profile@example.com")
    log_in(page, server, "profile@example.com", "viewer-password-1")
    page.get_by_role("link", name="Account").click()
    expect(page.locator("#profile-email")).to_have_text("profile@example.com")
    shoot(page, "app-profile")
    page.get_by_label("New password", exact=True).fill("a-new-password-2")
    page.get_by_label("Repeat the new password").fill("something else")
    page.get_by_role("button", name="Change password").click()
    expect(notice(page)).to_have_text("The two passwords differ.")
    page.get_by_label("Repeat the new password").fill("a-new-password-2")
    page.get_by_role("button", name="Change password").click()
    expect(notice(page)).to_have_text("Password changed. Other devices are logged out.")
    status, _ = server.call(
        "POST", "/api/accounts/login/", {"email": "profile@example.com", "password": "a-new-password-2"}
    )
    assert status == 200, "the new password logs in"

    page.get_by_label("New e-mail").fill("profile-new@example.com")
    page.get_by_role("button", name="Send a confirmation link").click()
    expect(notice(page)).to_contain_text("We sent a link to profile-new@example.com")
    link = link_in(_wait_for_mail(mailbox, "profile-new@example.com"))
    page.goto(link)
    expect(notice(page)).to_have_text("Email address changed.")
    expect(page.locator("#profile-email")).to_have_text("profile-new@example.com")


def test_forgot_password_mails_a_link_whose_page_sets_a_new_password(page, server, mailbox, catalogue):
    viewer(server, mailbox, "forgot@example.com")
    page.goto(server.url + "/#/login")
    page.get_by_role("link", name="Forgot password?").click()
    page.get_by_label("E-mail").fill("forgot@example.com")
    page.get_by_role("button", name="Send the link").click()
    expect(notice(page)).to_contain_text("a link to reset its password is on its way")
    mails = [m for m in mailbox.to("forgot@example.com") if "reset" in m["Subject"].lower()]
    deadline = time.monotonic() + 15
    while not mails and time.monotonic() < deadline:
        time.sleep(0.1)
        mails = [m for m in mailbox.to("forgot@example.com") if "reset" in m["Subject"].lower()]
    link = link_in(mails[-1])
    assert link.startswith(server.url + "/password/reset/verify?code=")

    page.goto(link)
    page.get_by_label("New password").fill("reset-password-3")
    page.get_by_role("button", name="Save password").click()
    expect(notice(page)).to_have_text("Password reset. Log in with the new one.")
    page.get_by_label("E-mail").fill("forgot@example.com")
    page.get_by_label("Password").fill("reset-password-3")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#catalogue")).to_be_visible()

    page.goto(link)  # a spent link says so at once
    expect(page.get_by_role("heading", name="This link no longer works")).to_be_visible()
    expect(notice(page)).to_have_text("Unable to verify user.")


def test_messages_clear_when_the_state_they_describe_ends(page, server, catalogue):
    page.goto(server.url + "/#/login")
    page.get_by_label("E-mail").fill(ADMIN[0])
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    expect(notice(page)).to_have_text("Unable to login with provided credentials.")
    page.get_by_role("link", name="Sign up").first.click()
    expect(notice(page)).to_be_hidden()  # a new view: the old error is gone

    page.goto(server.url + "/#/login")
    page.get_by_label("E-mail").fill(ADMIN[0])
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    expect(notice(page)).to_be_visible()
    page.get_by_label("Password").fill(ADMIN[1])
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#catalogue")).to_be_visible()
    expect(notice(page)).to_be_hidden()  # success ends the error


def test_staff_create_rename_and_delete_a_category(page, server, catalogue):
    log_in(page, server, *ADMIN)
    page.get_by_role("link", name="Categories").click()
    page.get_by_label("Name", exact=True).fill("Documentaries")
    page.get_by_role("button", name="Create category").click()
    expect(notice(page)).to_have_text("Category “Documentaries” created.")
    made = page.locator("#category-list li").filter(has=page.locator('input[value="Documentaries"]'))
    made.get_by_label("Name of Documentaries").fill("Docs")
    made.get_by_role("button", name="Rename").click()
    expect(notice(page)).to_have_text("Renamed to “Docs”.")
    made.get_by_role("button", name="Delete").click()
    made.get_by_role("button", name="Yes, delete").click()
    expect(notice(page)).to_have_text("Category “Docs” deleted.")
    expect(made).to_have_count(0)

    used = page.locator("#category-list li").filter(has=page.locator('input[value="Nature"]'))
    used.get_by_role("button", name="Delete").click()
    used.get_by_role("button", name="Yes, delete").click()
    expect(notice(page)).not_to_be_empty()  # the API's sentence: videos still use it
    expect(used).to_have_count(1)


def test_staff_edit_a_video_and_delete_another(page, server, catalogue, staff_token, tmp_path):
    clip = make_clip(tmp_path / "doomed.mp4", "640x360", seconds=8)
    body, content_type = multipart({"title": "To be deleted"}, clip.read_bytes(), clip.name)
    status, doomed = server.call("POST", "/api/videos/", body, token=staff_token, content_type=content_type)
    assert status == 201, doomed
    _, jobs = server.call("GET", "/api/admin/jobs/?type=transcode", token=staff_token)
    job = next(j for j in jobs["results"] if j["payload"].get("video_id") == doomed["id"])
    cancelled, _ = server.call("POST", f"/api/admin/jobs/{job['id']}/cancel/", token=staff_token)
    video = catalogue["videos"][1]
    log_in(page, server, *ADMIN)

    page.goto(f"{server.url}/#/title/{video['id']}")
    page.get_by_role("button", name="Edit").click()
    page.locator("#edit-video").get_by_label("Title").fill("How rockets really fly")
    page.locator("#edit-video").get_by_label("Category").select_option(label="Nature")
    page.get_by_role("button", name="Save changes").click()
    expect(notice(page)).to_have_text("Changes saved.")
    expect(page.locator("#details h1")).to_have_text("How rockets really fly")
    expect(page.locator("#details .meta")).to_contain_text("Nature")
    server.call(
        "PATCH",
        f"/api/videos/{video['id']}/",
        {"title": video["title"], "category": video["category"]},
        token=staff_token,
    )

    page.goto(server.url + "/#/")
    tile = page.locator(f'#other .tile[data-video="{doomed["id"]}"]')  # no category: "More videos"
    if cancelled == 200:  # staff see a video that is not ready with its state
        expect(tile.locator(".badge")).to_have_text("Failed")
        expect(tile).to_have_attribute("aria-label", "To be deleted, 0:08, failed")
    tile.click()
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Yes, delete").click()
    expect(notice(page)).to_have_text("“To be deleted” was deleted.")
    expect(page.locator(f'.tile[data-video="{doomed["id"]}"]')).to_have_count(0)
    assert server.call("GET", f"/api/videos/{doomed['id']}/", token=staff_token)[0] == 404


def test_staff_cancel_and_retry_a_job_in_the_jobs_view(page, server, mailbox, catalogue):
    log_in(page, server, *ADMIN)
    mailbox.stop()  # an SMTP outage: the signup mail waits in the queue
    try:
        server.call(
            "POST", "/api/accounts/signup/", {"email": "queued@example.com", "password": "queued-pass-1"}
        )
        page.get_by_role("link", name="Jobs").click()
        expect(page.locator("#jobs tbody tr").first).to_be_visible()
        mail = (
            page.locator('#jobs tr[data-state="queued"], #jobs tr[data-state="running"]')
            .filter(has_text="mail")
            .first
        )
        expect(mail).to_be_visible(timeout=15_000)
        job_id = mail.get_attribute("data-job")
        mail.get_by_role("button", name="Cancel mail job").click()
        row = page.locator(f'#jobs tr[data-job="{job_id}"]')
        expect(notice(page)).to_have_text("The job is cancelled.")
        expect(row).to_have_attribute("data-state", "cancelled")
    finally:
        mailbox.start()
    row.get_by_role("button", name="Retry mail job").click()
    expect(notice(page)).to_have_text("The job is queued again.")
    expect(row).to_have_attribute("data-state", "done", timeout=20_000)
    assert mailbox.to("queued@example.com"), "the retried mail went out"
    page.locator("#job-state").select_option("done")
    expect(page.locator("#jobs tbody tr").first).to_have_attribute("data-state", "done")


def test_a_dropped_tus_upload_retries_by_itself_and_says_so_in_words(page, server, catalogue, tmp_path):
    clip = make_clip(tmp_path / "dropped.mp4", "160x120", seconds=1)
    log_in(page, server, *ADMIN)
    dropped = []

    def drop_first_patch(route):
        if route.request.method == "PATCH" and not dropped:
            dropped.append(route.request.url)
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/api/uploads/**", drop_first_patch)
    page.get_by_role("link", name="Upload").click()
    page.get_by_label("File").set_input_files(str(clip))
    page.get_by_label("Title").fill("Survived a dropped connection")
    page.get_by_role("button", name="Upload").click()
    expect(notice(page)).to_contain_text(
        "The connection dropped at 0 %. Trying again in 1 s (attempt 1 of 6)"
    )
    assert "[object" not in notice(page).inner_text()
    expect(page.locator("#video-status")).to_have_attribute("data-status", "ready", timeout=60_000)
    assert dropped, "a PATCH was cut"
    expect(notice(page)).to_have_text("“Survived a dropped connection” is uploaded.")
    expect(page.get_by_label("Title")).to_have_value("")  # the form is ready for the next file
    assert page.get_by_label("File").evaluate("i => i.files.length") == 0


def test_an_upload_that_never_reconnects_ends_with_a_sentence(page, server, catalogue, tmp_path):
    clip = make_clip(tmp_path / "lost.mp4", "160x120", seconds=1)
    log_in(page, server, *ADMIN)
    page.evaluate("import('/static/js/upload.js').then(m => m.RETRY_DELAYS.splice(0, 6, 10, 10))")
    page.route(
        "**/api/uploads/**",
        lambda r: r.abort("connectionreset") if r.request.method == "PATCH" else r.continue_(),
    )
    page.get_by_role("link", name="Upload").click()
    page.get_by_label("File").set_input_files(str(clip))
    page.get_by_label("Title").fill("Never arrives")
    page.get_by_role("button", name="Upload").click()
    expect(notice(page)).to_contain_text(
        "The connection was lost at 0 % and did not come back.", timeout=15_000
    )
    assert "[object" not in notice(page).inner_text()


SAMPLE_STATS = {
    "views": 42,
    "unique_viewers": 17,
    "watch_time_s": 5230,
    "startup_ms": {"p50": 310, "p95": 890},
    "rebuffer_ratio": 0.0123,
    "errors": [{"code": "bufferStalledError", "count": 1}],
    "renditions": [
        {"rendition": "360p", "codec": "avc1", "seconds": 3100},
        {"rendition": "120p", "codec": "avc1", "seconds": 420},
    ],
    "retention": [
        1,
        0.97,
        0.93,
        0.9,
        0.86,
        0.84,
        0.8,
        0.77,
        0.75,
        0.71,
        0.7,
        0.68,
        0.64,
        0.61,
        0.6,
        0.57,
        0.55,
        0.52,
        0.5,
        0.46,
    ],
}


def test_staff_see_per_video_stats_with_a_retention_chart(page, server, catalogue, staff_token):
    video = catalogue["videos"][0]
    real, _ = server.call("GET", f"/api/videos/{video['id']}/stats/?days=7", token=staff_token)
    if real == 200:  # three viewers' sessions, as the player reports them: all, two thirds, a third
        for index, until in enumerate([3.0, 2.0, 1.0]):
            watch(
                server,
                staff_token,
                video["id"],
                f"app-test-session-{index}",
                until,
                startup_ms=250 + 100 * index,
            )
    if real == 404:  # the stats API is another branch this round: the page is shown with its contract's shape
        page.route(
            "**/stats/?days=*",
            lambda route: route.fulfill(
                status=200, content_type="application/json", body=json.dumps(SAMPLE_STATS)
            ),
        )
    log_in(page, server, *ADMIN)
    page.goto(f"{server.url}/#/title/{video['id']}")
    page.locator("#details").get_by_role("link", name="Stats").click()
    expect(page.locator("#stats h1")).to_have_text(f"Stats: {video['title']}")
    chart = page.locator("#retention-chart")
    expect(chart).to_be_visible()
    if real == 404:
        expect(page.locator(".stat-cards")).to_contain_text("42")
        expect(chart).to_have_attribute(
            "aria-label", "Audience retention: 100 % at the start, 46 % at the end"
        )
        expect(chart.locator("circle")).to_have_count(20)
    if real == 200:
        views = page.locator(".stat-cards div").filter(has_text="Views").first.locator("dd")
        assert int(views.inner_text()) >= 1, "the sessions counted views"
        expect(chart.locator("circle")).to_have_count(20)
    shoot(page, "app-stats")


def watch(server, token: str, video_id: str, session: str, until: float, *, startup_ms: int) -> None:
    """One playback session as the player reports it: start, a heartbeat in each twentieth of the
    3 s clip up to `until` seconds (the stats mark the twentieth a heartbeat's position falls in), end."""
    step = 3.0 / 20
    events: list[dict] = [{"seq": 0, "type": "start", "startup_ms": startup_ms}]
    for bucket in range(round(until / step)):
        events.append(
            {
                "seq": len(events),
                "type": "heartbeat",
                "position": round((bucket + 0.5) * step, 3),
                "rendition": "360p",
                "codec": "avc1",
                "bitrate": 400_000,
                "played": step,
            }
        )
    events.append({"seq": len(events), "type": "end", "position": until})
    status, reply = server.call(
        "POST", f"/api/videos/{video_id}/playback/", {"session": session, "events": events}, token=token
    )
    assert status == 202, reply


def test_an_unverified_user_can_have_the_verification_mail_sent_again(page, server, mailbox, catalogue):
    email = "unverified@example.com"
    status, _ = server.call("POST", "/api/accounts/signup/", {"email": email, "password": "unverified-1"})
    assert status == 201
    _wait_for_mail(mailbox, email)
    before = len(mailbox.to(email))
    page.goto(server.url + "/#/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill("unverified-1")
    page.get_by_role("button", name="Log in").click()
    expect(notice(page)).to_have_text("User account not verified.")
    page.get_by_role("button", name="Resend the verification mail").click()
    resend_exists = (
        server.call("POST", "/api/accounts/signup/resend/", {"email": "nobody@example.com"})[0] != 404
    )
    if resend_exists:
        expect(notice(page)).to_have_text(f"If {email} waits for verification, a new link is on its way.")
        deadline = time.monotonic() + 15
        while len(mailbox.to(email)) <= before:
            assert time.monotonic() < deadline, "no second verify mail"
            time.sleep(0.1)
        assert "/signup/verify?code=" in link_in(mailbox.to(email)[-1])
    else:  # the resend endpoint is another branch this round: the page says what to do instead
        expect(notice(page)).to_contain_text("sign up again with the same address")
