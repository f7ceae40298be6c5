"""The web app and the docs page: served from web/ with their own media types, nothing outside it, no CDN."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parent.parent / "web"
OUR_FILES = [p for p in WEB.rglob("*") if p.is_file() and "vendor" not in p.parts]
URL = re.compile(r"""https?://[^\s"'`)<>]+""")
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # a name (xmlns, createElementNS), never fetched


async def test_the_root_answers_the_web_app_as_html(api):
    reply = await api.get("/")
    assert reply.code == 200
    assert reply.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert b'<script type="module" src="/static/js/main.js">' in reply.body
    assert b"/static/vendor/hls.min.js" in reply.body


async def test_the_docs_page_is_swagger_ui_on_the_schema_with_persistent_authorization(api):
    page = await api.get("/api/docs/")
    assert page.code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert b"/static/vendor/swagger-ui-bundle.js" in page.body
    script = await api.get("/static/docs.js")
    assert b'url: "/api/schema/"' in script.body
    assert b"persistAuthorization: true" in script.body


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/static/js/main.js", "text/javascript"),
        ("/static/app.css", "text/css"),
        ("/static/vendor/hls.min.js", "text/javascript"),
        ("/static/vendor/tus.min.js", "text/javascript"),
        ("/static/vendor/swagger-ui-bundle.js", "text/javascript"),
        ("/static/vendor/swagger-ui.css", "text/css"),
    ],
)
async def test_assets_are_served_with_their_media_type(api, path, media_type):
    reply = await api.get(path)
    assert reply.code == 200
    assert reply.headers["Content-Type"].split(";")[0] == media_type
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.body == (WEB / path.removeprefix("/static/")).read_bytes()


async def test_an_unchanged_asset_is_revalidated_with_a_304(api):
    first = await api.get("/static/app.css")
    again = await api.get("/static/app.css", headers={"If-None-Match": first.headers["Etag"]})
    assert again.code == 304


@pytest.mark.parametrize(
    "path",
    ["/static/../server.py", "/static/%2e%2e/server.py", "/static/..%2fconfig.yaml", "/static/nothing.js"],
)
async def test_nothing_outside_web_or_missing_is_served(api, path):
    reply = await api.get(path)
    assert reply.code == 404
    assert reply.data == {"detail": "Not found."}


@pytest.mark.parametrize("path", ["/static/%00", "/static/js/%00main.js", "/static/app.css%00.js"])
async def test_a_static_path_with_a_nul_byte_is_a_json_404(api, path):
    reply = await api.get(path)
    assert reply.code == 404
    assert reply.data == {"detail": "Not found."}


@pytest.mark.parametrize("path", ["/static/%ff", "/static/js/%c0%af.js"])
async def test_a_static_path_that_is_not_utf8_is_a_json_400(api, path):
    reply = await api.get(path)
    assert reply.code == 400
    assert reply.headers["Content-Type"].startswith("application/json")


async def test_a_static_name_longer_than_the_file_system_allows_is_a_json_404(api):
    reply = await api.get("/static/" + "x" * 300 + ".js")
    assert reply.code == 404
    assert reply.data == {"detail": "Not found."}


async def test_a_file_of_an_unknown_type_under_web_is_not_served(api):
    reply = await api.get("/static/vendor/update.sh")
    assert reply.code == 404


@pytest.mark.parametrize(
    "path", ["/signup/verify?code=abc", "/password/reset/verify/?code=x", "/email/change/verify"]
)
async def test_the_mailed_link_paths_answer_the_web_app(api, path):
    reply = await api.get(path)
    assert reply.code == 200
    assert reply.headers["Content-Type"].startswith("text/html")
    assert reply.body == (WEB / "index.html").read_bytes()


async def test_another_path_ending_in_verify_is_a_json_404(api):
    reply = await api.get("/some/other/verify")
    assert reply.code == 404
    assert reply.data == {"detail": "Not found."}


class TestAnotherSignupVerifyPath:
    @pytest.fixture
    def settings_overrides(self):
        return {"accounts": {"signup_verify_path": "/join/verify"}}

    async def test_the_verify_paths_follow_the_settings(self, api):
        assert (await api.get("/join/verify?code=abc")).code == 200
        assert (await api.get("/signup/verify?code=abc")).code == 404


def test_our_pages_and_scripts_name_no_other_host():
    assert OUR_FILES, "web/ has files"
    for path in OUR_FILES:
        text = path.read_text(encoding="utf-8", errors="replace")
        links = [url for url in URL.findall(text) if url.replace("%3A", ":") != SVG_NAMESPACE]
        assert links == [], f"{path.relative_to(WEB)} links to another host"


def test_every_vendored_file_is_pinned_in_versions():
    versions = (WEB / "vendor" / "VERSIONS").read_text()
    for name in ("swagger-ui-dist@", "hls.js@", "tus-js-client@", "dashjs@"):
        assert re.search(re.escape(name) + r"\d+\.\d+\.\d+", versions), name
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "hls.min.js", "tus.min.js", "dash.all.min.js"):
        assert (WEB / "vendor" / name).stat().st_size > 10_000


# --- browser headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/api/docs/", "/signup/verify/", "/static/js/main.js"])
async def test_pages_forbid_other_scripts_and_framing_and_keep_the_referrer_to_the_origin(api, path):
    reply = await api.get(path)
    assert reply.code == 200
    policy = dict(
        directive.strip().split(" ", 1) for directive in reply.headers["Content-Security-Policy"].split(";")
    )
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    assert "blob:" in policy["media-src"]  # hls.js plays through MediaSource
    assert "data:" in policy["media-src"]  # and its subtitle <track>s start as data:,WEBVTT
    assert reply.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("page", sorted(WEB.glob("*.html")), ids=lambda p: p.name)
def test_our_pages_hold_no_inline_script_or_style_that_the_policy_would_block(page):
    html = page.read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline <script>"
    assert "<style" not in html, "an inline <style>"
    assert not re.search(r"\son\w+=", html), "an inline event handler"
    assert not re.search(r"\sstyle=", html), "an inline style attribute"
