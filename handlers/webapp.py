"""The reference web app and the API docs page: static files under web/, served by the API's own process.

`/` and the front-end paths the account mails link to (settings `accounts.*_verify_path`) answer the
app's page, which routes itself by `location.pathname`; `/static/<path>` answers a file under web/
and nothing outside it; `/api/docs/` answers Swagger UI on `/api/schema/`. No CDN: the browser
libraries are vendored in web/vendor/ (see web/vendor/VERSIONS and update.sh).
"""

from __future__ import annotations

from pathlib import Path

from core.errors import NotFound
from handlers.base import BaseHandler, public
from handlers.openapi import Reply, api

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
HTML = "text/html; charset=UTF-8"
# Explicit, so that the answer does not depend on the host's /etc/mime.types.
MEDIA_TYPES = {
    ".html": HTML,
    ".js": "text/javascript; charset=UTF-8",
    ".mjs": "text/javascript; charset=UTF-8",
    ".css": "text/css; charset=UTF-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=UTF-8",
}
# The pages' scripts and styles come from this server only (web/, no inline ones); media, images and
# fetches may come from an edge or an object store (presigned URLs), and hls.js plays through blob:
# URLs (MediaSource) and may run a blob: worker; its subtitle tracks are <track src="data:,WEBVTT"> elements
# that it fills with cues. No page may be framed (clickjacking).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob: https: http:",
        "media-src 'self' data: blob: https: http:",
        "connect-src 'self' https: http:",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
BROWSER_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "strict-origin-when-cross-origin",  # no path or query (codes) to other sites
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
}
PAGE = Reply("The page.", ("text/html",))
UNCHANGED = Reply("Unchanged since the ETag given in If-None-Match.")


def is_file(path: Path) -> bool:
    """A regular file is there; a name the file system refuses (too long, say) is no file."""
    try:
        return path.is_file()
    except OSError:
        return False


class PageHandler(BaseHandler):
    """Answers files from web/ with their own media type, revalidated by ETag (Tornado's, on GET)."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Cache-Control", "no-cache")  # cheap to revalidate; a new release shows at once
        for name, value in BROWSER_HEADERS.items():
            self.set_header(name, value)

    def send_file(self, relative: str) -> None:
        """The file at this path under web/, or a JSON 404 for anything else (never outside web/)."""
        path = (WEB_ROOT / relative).resolve()
        media_type = MEDIA_TYPES.get(path.suffix.lower())
        if media_type is None or not path.is_relative_to(WEB_ROOT) or not is_file(path):
            raise NotFound()
        self.set_header("Content-Type", media_type)
        self.finish(path.read_bytes())


class IndexHandler(PageHandler):
    @api("The reference web app", responses={200: PAGE, 304: UNCHANGED})
    @public
    def get(self) -> None:
        self.send_file("index.html")


class VerifyPageHandler(PageHandler):
    """The front-end paths the account mails link to (`?code=` follows): the web app, which verifies."""

    @api(
        "The web app at a path the account mails link to",
        responses={200: PAGE, 304: UNCHANGED},
        path={
            "page": "A path from the settings: accounts.signup_verify_path, and the reset and change ones."
        },
    )
    @public
    def get(self, page: str) -> None:
        accounts = self.config.accounts
        paths = {
            accounts.signup_verify_path,
            accounts.password_reset_verify_path,
            accounts.email_change_verify_path,
        }
        if "/" + page.strip("/") not in {p.rstrip("/") for p in paths}:
            raise NotFound()
        self.send_file("index.html")


class DocsHandler(PageHandler):
    @api("The API docs page (Swagger UI on /api/schema/)", responses={200: PAGE, 304: UNCHANGED})
    @public
    def get(self) -> None:
        self.send_file("docs.html")


class StaticHandler(PageHandler):
    @api(
        "A file of the web app or the docs page",
        responses={
            200: Reply("The file.", ("text/javascript", "text/css", "text/html", "image/svg+xml")),
            304: UNCHANGED,
        },
        path={"path": "The file's path under web/."},
    )
    @public
    def get(self, path: str) -> None:
        self.send_file(path)


routes = [
    (r"/", IndexHandler),
    (r"/api/docs/?", DocsHandler),
    (r"/static/(.+)", StaticHandler),
    # Configured verify paths end in /verify (the defaults do); the handler checks the exact path.
    (r"/((?:[a-z0-9_-]+/)+verify)/?", VerifyPageHandler),
]
