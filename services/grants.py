"""Stream grants: signed, expiring capabilities to play one video, carried in the stream URLs' path.

A grant names one video, one user and the user's credentials epoch; the stream handlers accept it
with no header, so that relative URIs in the playlists resolve under it and a plain <video>, hls.js or
ffmpeg plays it. A grant of a deactivated or deleted user opens nothing, and neither does one made
before the user logged out, changed or reset the password or was deactivated.
"""

from __future__ import annotations

from dataclasses import dataclass

from cachetools import TTLCache

from core.clock import Clock
from core.errors import Forbidden, NotFound
from core.signing import Signer
from models.users import User, Users
from models.videos import Rendition, Video, Videos
from services.media import Media

GRANT = "stream-grant"
INVALID = "The stream link is invalid or has expired."
REVOKED = "The stream link is no longer valid."


@dataclass(frozen=True)
class StreamUrls:
    """A video's URLs for one user, under its grant: none while it cannot be played."""

    hls_url: str | None = None
    dash_url: str | None = None
    thumbnail_url: str | None = None
    storyboard_url: str | None = None
    renditions: tuple[tuple[Rendition, str], ...] = ()  # each rendition and its playlist's URL
    subtitles: tuple[tuple[str, str], ...] = ()  # each subtitle track's id and its whole file's URL
    chapters_url: str | None = None


class Grants:
    """Makes grants (each re-used for a minute per user and video: a page shows 24 videos) and opens them."""

    def __init__(
        self,
        signer: Signer,
        users: Users,
        videos: Videos,
        *,
        max_age_s: int,
        clock: Clock,
        reuse_s: float = 60.0,
        entries: int = 50_000,
        public_url: str | None = None,
        media: Media | None = None,
    ) -> None:
        # every URL in the JSON starts with it when set (server.public_url): absolute for any front-end
        self.prefix = (public_url or "").rstrip("/")
        self.signer = signer
        self.users = users
        self.videos = videos
        self.max_age_s = max_age_s
        self.media = media  # asked for the edge's URLs below the master playlist
        self.clock = clock
        self._made: TTLCache[tuple[str, str, int], str] = TTLCache(
            maxsize=entries, ttl=reuse_s, timer=lambda: clock().timestamp()
        )

    def grant(self, video_id: str, user: User) -> str:
        """A grant for this video and user in its credentials epoch, no older than the re-use window."""
        key = (video_id, user.id, user.epoch)
        grant = self._made.get(key)
        if grant is None:
            payload = {"v": video_id, "u": user.id, "e": user.epoch}
            grant = self._made[key] = self.signer.dumps(GRANT, payload)
        return grant

    def stream_base(self, video: Video, user: User) -> str:
        """The URL every file of the video's ladder lies under for this user: its grant's folder."""
        return f"{self.prefix}/api/stream/{self.grant(str(video.id), user)}"

    def urls(self, video: Video, user: User) -> StreamUrls:
        """The URLs of a playable video for one user, under its grant; nothing while it cannot be played."""
        if video.playable_path is None:
            return StreamUrls()
        base = self.stream_base(video, user)
        finished = video.is_finished

        def below(name: str) -> str:
            """A file below the master playlist: checked by the edge on its own when there is one."""
            url = self.media.edge_url(video, name) if self.media is not None else None
            if url is not None:
                return url if "://" in url else f"{self.prefix}{url}"  # nginx: a path on this site
            return f"{base}/{name}"

        return StreamUrls(
            hls_url=f"{base}/master.m3u8",  # the authorisation point: always this server
            # the DASH manifest (a CMAF ladder's), once whole: an authorisation point as the master is
            dash_url=f"{base}/manifest.mpd" if finished and video.dash_path else None,
            thumbnail_url=below("thumbnail.jpg") if finished and video.thumbnail_path else None,
            storyboard_url=below("storyboard.vtt") if finished and video.storyboard_path else None,
            renditions=tuple((r, below(f"{r.height}p/index.m3u8")) for r in video.renditions),
            subtitles=tuple((t.id, below(f"subs-{t.id}/subtitles.vtt")) for t in video.subtitles if finished),
            chapters_url=below(video.chapters_path) if finished and video.chapters_path else None,
        )

    async def open(self, grant: str) -> Video:
        """The video a good grant opens, for a user who may still watch; Forbidden or NotFound otherwise."""
        payload = self.signer.loads(GRANT, grant, self.max_age_s)
        if not isinstance(payload, dict) or not isinstance(payload.get("v"), str):
            raise Forbidden(INVALID)
        user = await self.users.get(payload.get("u", ""))
        if user is None or not user.is_active or payload.get("e", 0) != user.epoch:
            raise Forbidden(REVOKED)
        return await self.streamable(payload["v"])

    async def streamable(self, video_id: str) -> Video:
        """A video whose ladder (finished or growing) can be served, else NotFound."""
        video = await self.videos.for_streaming(video_id)
        if video is None or video.playable_path is None:
            raise NotFound()
        return video
