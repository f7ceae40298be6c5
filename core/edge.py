"""URLs the edge checks on its own: every file below a master playlist, without Python per request.

The API authorises the viewer once, when it serves the master playlist. Every URL it lists (variant
playlists, and through them segments; the thumbnail and storyboard likewise) carries a token scoped to
ONE ladder folder (``videos/<id>/hls-<run>``) and an expiry WINDOW, not to the user: every viewer gets
the same URLs within a window, so nginx's ``proxy_cache`` or a CDN keeps one copy per file for all.

Windows: ``start = now - now % window``; a URL made in a window expires at ``start + 2 * window``, so it
is the same string for the whole window and is still valid for at least one window after it was made.

The trade-off: once issued, a URL works until it expires, whoever holds it. A user deactivated (or a
video unpublished) keeps playing for at most two windows (default 2 x 600 s); the master playlist, and
so any new window's URLs, are refused at once. Keep `media.edge_window_s` short.

Two edges:

- ``NginxEdge`` (local storage): nginx ``secure_link`` with the token and expiry in the PATH,
  ``<base>/<token>/<expires>/<folder>/<file>``, so that relative URIs inside the variant playlists
  (``seg_00001.ts``) resolve under the same token. token = base64url(md5(expires + folder + " " + secret))
  without padding, as ``secure_link_md5 "$secure_link_expires$edge_folder <secret>"`` computes it
  (deploy/nginx/videoflix.conf.template).
- ``S3Edge`` (S3 storage): presigned GETs per object, signed AT the window start, so they too are the
  same within a window. A presigned URL's query is lost when a player resolves a relative URI, so the
  variant playlists cannot come from the bucket as they are: the API serves them at
  ``<api base>/<token>/<expires>/<folder>/<rung>/index.m3u8`` (token as above, checked by the API or by
  nginx before its cache), rewritten by ``S3Edge.variant`` to list presigned segment URLs. Those answers
  depend only on the URL: nginx may cache them until ``expires``.

The DASH manifest (``manifest.mpd``) is, like the master playlist, an authorisation point the API
serves: for nginx it gains a ``<BaseURL>`` (the folder under this window's token) that its relative
``SegmentTemplate`` URLs resolve against; for S3 each ``SegmentTemplate`` becomes a ``SegmentList`` of
presigned URLs (a template cannot carry a signature per object).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import posixpath
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

# A ladder folder as stored: videos/<ObjectId>/<one folder name>; nothing else can be signed.
FOLDER = re.compile(r"^videos/[0-9a-f]{24}/[A-Za-z0-9._-]+$")
# A Representation's own BaseURL (a subtitle track's whole WebVTT file), relative to the ladder.
REPRESENTATION_BASE = re.compile(
    r"(?<=>)<BaseURL>([A-Za-z0-9_-]+/[A-Za-z0-9_.-]+)</BaseURL>(?=</Representation>)"
)
URI_ATTRIBUTE = re.compile(r'URI="([^"]*)"')
# The MPD's first Period: a BaseURL goes before it. A SegmentTemplate as transcode/cmaf.py writes it.
PERIOD = re.compile(r"^(\s*)<Period\b", re.MULTILINE)
TEMPLATE = re.compile(r"<SegmentTemplate ([^>]*)>(<SegmentTimeline>.*?</SegmentTimeline>)</SegmentTemplate>")
ATTRIBUTE = re.compile(r'(\w+)="([^"]*)"')
REPEAT = re.compile(r'<S [^>]*?(?:r="(\d+)")?\s*/>')


def window(now: float, window_s: int) -> tuple[int, int]:
    """(start, expires) of the window holding `now`: URLs made in it expire at start + 2 windows."""
    start = int(now) // window_s * window_s
    return start, start + 2 * window_s


def check_folder(folder: str) -> str:
    folder = folder.strip("/")
    if not FOLDER.match(folder):
        raise ValueError(f"not a ladder folder: {folder!r}")
    return folder


def nginx_token(secret: str, expires: int, folder: str) -> str:
    """What nginx's secure_link_md5 "$secure_link_expires$edge_folder <secret>" computes, base64url."""
    digest = hashlib.md5(f"{expires}{folder} {secret}".encode(), usedforsecurity=False).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def join_inside(base: str, uri: str) -> str | None:
    """base/uri normalised, or None when it leaves base (``..``) or is absolute/another origin."""
    if "://" in uri or uri.startswith("/") or "?" in uri or "#" in uri:
        return None
    path = posixpath.normpath(posixpath.join(base, uri))
    if not base:
        return None if path == ".." or path.startswith("../") or path == "." else path
    return path if path.startswith(base + "/") else None


def rewrite_playlist(text: str, replace: Callable[[str], str]) -> str:
    """Every URI of an m3u8 (its URI lines and URI="..." attributes) put through `replace`."""
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            out.append(replace(stripped))
        elif stripped.startswith("#EXT") and 'URI="' in stripped:
            out.append(URI_ATTRIBUTE.sub(lambda m: f'URI="{replace(m.group(1))}"', stripped))
        else:
            out.append(line)
    return "\n".join(out) + "\n"


class NginxEdge:
    """Tokens nginx's secure_link checks; files come from MEDIA_ROOT on disk."""

    # Ladders lie below MEDIA_ROOT (a growing one in the runner's scratch folder): the API may serve them.
    ladders_in_store = False

    def __init__(
        self, base_url: str, secret: str, window_s: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.window_s = window_s
        self.clock = clock

    def folder_url(self, folder: str, now: float | None = None) -> str:
        """The URL of a ladder folder under this window's token, ending in '/'."""
        folder = check_folder(folder)
        _, expires = window(self.clock() if now is None else now, self.window_s)
        return f"{self.base_url}/{nginx_token(self.secret, expires, folder)}/{expires}/{folder}/"

    def url(self, folder: str, name: str, now: float | None = None) -> str:
        """One file of a ladder (``720p/index.m3u8``, ``thumbnail.jpg``...)."""
        path = join_inside("", name)
        if not path:
            raise ValueError(f"not a file of a ladder: {name!r}")
        return self.folder_url(folder, now) + path

    def master(self, text: str, folder: str, now: float | None = None) -> str:
        """The master playlist as the API sends it: variant URIs made absolute edge URLs."""
        base = self.folder_url(folder, now)
        return rewrite_playlist(text, lambda uri: base + uri if join_inside("", uri) else uri)

    def manifest(self, text: str, folder: str, now: float | None = None) -> str:
        """The DASH manifest as the API sends it: its relative URLs resolve under the edge's folder URL."""
        base = f"<BaseURL>{escape(self.folder_url(folder, now))}</BaseURL>"
        return PERIOD.sub(lambda m: f"{m.group(1)}{base}\n{m.group(1)}<Period", text, count=1)

    def check(self, token: str, expires: int, folder: str, now: float | None = None) -> bool:
        """What nginx decides, in Python (for an API route behind the same tokens, and the tests)."""
        if not FOLDER.match(folder):
            return False
        if (self.clock() if now is None else now) > expires:
            return False
        return hmac.compare_digest(token, nginx_token(self.secret, expires, folder))


class S3Edge:
    """Presigned object URLs, signed at the window start; variant playlists rewritten by the API."""

    # Every ladder is in the bucket, a growing one too (services/live_ladder.py): nothing is on this disk.
    ladders_in_store = True

    def __init__(
        self,
        storage: Any,
        secret: str,
        window_s: int,
        api_base: str = "/api/edge",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage  # core.storage.S3Storage
        self.tokens = NginxEdge(api_base, secret, window_s, clock)
        self.window_s = window_s
        self.clock = clock

    def presigned(self, key: str, expires: int) -> str:
        """A GET URL for one object, the same string for every call with the same `expires`."""
        signed_at = datetime.fromtimestamp(expires - 2 * self.window_s, UTC)
        return str(self.storage.presign(key, expires_s=2 * self.window_s, signed_at=signed_at))

    def url(self, folder: str, name: str, now: float | None = None) -> str:
        """A file of the ladder as the master playlist lists it: playlists through the API (they need
        rewriting), anything else (thumbnail, storyboard, an fMP4 init) presigned from the bucket."""
        folder = check_folder(folder)
        path = join_inside("", name)
        if not path:
            raise ValueError(f"not a file of a ladder: {name!r}")
        if path.endswith(".m3u8"):
            return self.tokens.url(folder, path, now)
        _, expires = window(self.clock() if now is None else now, self.window_s)
        return self.presigned(f"{folder}/{path}", expires)

    def master(self, text: str, folder: str, now: float | None = None) -> str:
        """The master playlist as the API sends it (to an authorised viewer)."""
        return rewrite_playlist(text, lambda uri: self.url(folder, uri, now) if join_inside("", uri) else uri)

    def variant(self, text: str, folder: str, name: str, expires: int) -> str:
        """A variant playlist (`name`, e.g. ``720p/index.m3u8``) with each segment URI presigned for the
        window its URL names: the answer depends on the URL only, so a cache may keep it until `expires`.
        The caller has checked the URL's token (``check``) first."""
        folder = check_folder(folder)
        base = posixpath.dirname(f"{folder}/{name}")

        def sign(uri: str) -> str:
            key = join_inside(base, uri)
            return self.presigned(key, expires) if key and key.startswith(folder + "/") else uri

        return rewrite_playlist(text, sign)

    def manifest(self, text: str, folder: str, now: float | None = None) -> str:
        """The DASH manifest as the API sends it (to an authorised viewer): every SegmentTemplate made a
        SegmentList of presigned URLs, for this window."""
        folder = check_folder(folder)
        _, expires = window(self.clock() if now is None else now, self.window_s)

        def url(name: str) -> str:
            key = join_inside(folder, name)
            if not key:
                raise ValueError(f"not a file of a ladder: {name!r}")
            return quoteattr(self.presigned(key, expires))

        def segment_list(match: re.Match[str]) -> str:
            found = dict(ATTRIBUTE.findall(match.group(1)))
            timeline = match.group(2)
            first = int(found.get("startNumber", "1"))
            count = sum(int(r or 0) + 1 for r in REPEAT.findall(timeline))
            media = found["media"]
            urls = "".join(
                f"<SegmentURL media={url(media.replace('$Number%05d$', f'{n:05d}'))}/>"
                for n in range(first, first + count)
            )
            return (
                f'<SegmentList timescale="{found["timescale"]}" '
                f'presentationTimeOffset="{found.get("presentationTimeOffset", "0")}">'
                f"<Initialization sourceURL={url(found['initialization'])}/>{timeline}{urls}</SegmentList>"
            )

        def whole_file(match: re.Match[str]) -> str:  # a text track: one file, named by its BaseURL
            key = join_inside(folder, match.group(1))
            if not key:
                raise ValueError(f"not a file of a ladder: {match.group(1)!r}")
            return f"<BaseURL>{escape(self.presigned(key, expires))}</BaseURL>"

        return REPRESENTATION_BASE.sub(whole_file, TEMPLATE.sub(segment_list, text))

    def check(self, token: str, expires: int, folder: str, now: float | None = None) -> bool:
        return self.tokens.check(token, expires, folder, now)
