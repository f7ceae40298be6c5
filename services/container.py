"""The composition root: every service built from the settings and the database, in one place.

`server.py`, the tests and the benches all call `build_services`; collaborators are passed to
constructors, never patched on afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.clock import Clock, utcnow
from core.config import ServerSettings, Settings
from core.metrics import Metrics, Sampler
from core.passwords import PasswordHasher
from core.signing import Signer
from models.categories import Categories
from models.db import Database
from models.jobs import Jobs
from models.locks import Leases
from models.mylist import MyList
from models.playback import MemoryRawEvents, MongoRawEvents, RawEvents, Sessions, VideoDays
from models.progress import Progress
from models.ratelimits import MemoryRateLimiter, RateLimiter
from models.tokens import Tokens
from models.uploads import Uploads
from models.users import Users
from models.videos import Videos
from services.accounts import AccountService
from services.admin import AdminService
from services.analytics import AnalyticsService, ViewsHook, WeeklyViews
from services.audio_tracks import AUDIO_TRACK, AudioTrackJobs, AudioTracks
from services.av1 import AV1, Av1Jobs, Av1Planner, after_publish
from services.catalogue import CatalogueService
from services.grants import Grants
from services.health import Health
from services.jobs import JobQueue, node_name
from services.mail import MAIL, Backend, MailDelivery, Mailer, backend_for
from services.media import Media, build_media
from services.mylist import MyListService
from services.publishing import PUBLISH, PublishJobs
from services.throttle import Throttle
from services.tracks import LadderTracks, TracksService
from services.transcoding import TRANSCODE, TranscodeJobs, encode_settings
from services.uploads import UploadExpiry, UploadFiles, UploadService
from transcode.pool import TranscodePool


def link_base(server: ServerSettings, site_url: str | None = None) -> str:
    """Where mail links point: FRONTEND_URL; unset, this server's own web app - PUBLIC_URL, else the
    address it listens on (`site_url`, which server.py knows once bound; else host and port as set)."""
    if server.frontend_url:
        return server.frontend_url
    if server.public_url:
        return server.public_url
    return site_url or listening_url(server.host, server.port)


def listening_url(host: str, port: int) -> str:
    """http://host:port for a listening address; a wildcard address is reached as localhost."""
    if host in ("", "0.0.0.0", "::"):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


# The job types each role runs; every role may queue any of them. A publish runs where its scratch is:
# a transcode node (services/publishing.py).
ROLE_JOBS = {
    "all": (MAIL, TRANSCODE, PUBLISH, AV1, AUDIO_TRACK),
    "api": (MAIL,),
    "transcode": (TRANSCODE, PUBLISH, AV1, AUDIO_TRACK, MAIL),
}


@dataclass
class Services:
    """Everything the handlers and the server share; reached as `self.services` in a handler."""

    settings: Settings
    db: Database
    clock: Clock
    hasher: PasswordHasher
    media: Media  # the only holder of the store and the edge
    throttle: Throttle
    pool: TranscodePool
    queue: JobQueue
    mailer: Mailer
    accounts: AccountService
    grants: Grants
    catalogue: CatalogueService
    admin: AdminService
    metrics: Metrics
    sampler: Sampler
    health: Health
    audio_tracks: AudioTracks
    uploads: UploadService
    av1: Av1Planner  # queue_av1(video_id): the AV1 follow-up of a video (view counts call it)
    tracks: TracksService
    analytics: AnalyticsService
    mylist: MyListService
    # Removes stale resumable uploads; None in a process that serves no uploads (the transcode role).
    upload_expiry: UploadExpiry | None

    async def start(self) -> None:
        """Open the media store; start the background work (the job queue, and the pool when this
        process transcodes)."""
        await self.media.start()
        if TRANSCODE in self.queue.run_types:
            self.pool.start()
        self.queue.start()
        self.sampler.start()
        if self.upload_expiry is not None:
            self.upload_expiry.start()

    async def stop(self) -> None:
        """Hand running jobs back, stop the pool (no FFmpeg left), release the store and the threads."""
        await self.sampler.stop()
        if self.upload_expiry is not None:
            await self.upload_expiry.stop()
        await self.queue.stop(self.settings.server.shutdown_grace_s)
        await self.pool.stop()
        await self.media.close()
        self.hasher.close()


def build_services(
    settings: Settings,
    db: Database,
    *,
    clock: Clock = utcnow,
    run_types: Sequence[str] | None = None,
    mail_backend: Backend | None = None,
    hasher: PasswordHasher | None = None,
    node: str | None = None,
    free_bytes: Callable[[], int] | None = None,
    site_url: str | None = None,
    on_views: ViewsHook | None = None,
) -> Services:
    """Build every service; `run_types` are the job types this process runs (default: all of them);
    `free_bytes` stands in for the free space on MEDIA_ROOT (tests); `site_url` is the address this
    server's web app is reached at (mail links go there when FRONTEND_URL is unset); `on_views` hears of every
    counted view with the video's views in 7 days (default: the AV1 planner's, for av1: popular)."""
    hasher = hasher or PasswordHasher(settings.accounts.bcrypt_rounds)
    media = build_media(settings)
    signer = Signer(settings.server.secret_key or "", clock)
    users, tokens, jobs = Users(db), Tokens(db), Jobs(db)
    # Nothing outside this process writes to the in-memory database: its cache needs no TTL.
    ttl = settings.catalogue.cache_ttl_s
    videos = Videos(db, math.inf if db.in_memory and ttl > 0 else ttl)
    pool = TranscodePool(settings.transcode.workers)
    metrics = Metrics()
    upload_files = UploadFiles(Uploads(db), media.upload_bytes(), clock)
    node = node or node_name(settings.jobs, settings.server.port)
    # a new ladder gets the video's tracks again; one edit of its manifests at a time, on any node
    ladder_tracks = LadderTracks(videos, media, clock, Leases(db), node)
    locks = ladder_tracks.editing  # one edit of a video's manifests at a time: subtitles and audio alike
    job_types = [
        MailDelivery(settings.email, mail_backend or backend_for(settings.email)),
        TranscodeJobs(
            videos,
            jobs,
            media,
            pool,
            settings.transcode,
            media_settings=settings.media,
            clock=clock,
            metrics=metrics,
        ),
        PublishJobs(
            videos,
            media,
            settings.publish,
            clock=clock,
            # the new ladder gets the subtitles, then the added audio tracks (queued again: `audio_tracks`
            # is built below, with the queue, and looked up when a ladder is published)
            after_publish=[ladder_tracks.restore, lambda video: audio_tracks.restore(video)],
            after_ready=after_publish(videos, settings.transcode),
        ),
        Av1Jobs(
            videos, media, pool, settings.transcode, media_settings=settings.media, clock=clock, locks=locks
        ),
        AudioTrackJobs(
            videos,
            media,
            pool,
            settings.transcode,
            encode_settings=lambda: encode_settings(settings.transcode),
            locks=locks,
            clock=clock,
        ),
    ]
    queue = JobQueue(
        jobs,
        settings.jobs,
        job_types,
        node=node,
        clock=clock,
        run_types=run_types,
        metrics=metrics,
    )
    mailer = Mailer(queue)
    audio_tracks = AudioTracks(videos, media, queue, settings.media, settings.transcode, locks, clock)
    av1 = Av1Planner(queue, videos, settings.transcode)  # the AV1 follow-up, for av1: popular by views
    accounts = AccountService(
        users,
        tokens,
        hasher,
        signer=signer,
        mailer=mailer,
        settings=settings.accounts,
        frontend_url=link_base(settings.server, site_url),
        clock=clock,
    )
    grants = Grants(
        signer,
        users,
        videos,
        max_age_s=settings.media.grant_max_age_s,
        clock=clock,
        public_url=settings.server.public_url,
        media=media,
    )
    progress, mylist_rows, sessions, days = Progress(db), MyList(db), Sessions(db), VideoDays(db)
    # mongomock walks a collection with a TTL index on every access: raw events stay in the process there
    raw_events: RawEvents = MemoryRawEvents() if db.in_memory else MongoRawEvents(db)
    weekly = WeeklyViews(days, clock, settings.analytics.popular_cache_s)
    catalogue = CatalogueService(
        Categories(db),
        videos,
        progress,
        media,
        grants,
        queue,
        clock,
        playable_for_everyone=settings.catalogue.playable_while_processing == "everyone",
        media_settings=settings.media,
        popularity=weekly,
        video_cleanups=(mylist_rows.delete_for_video, sessions.delete_for_video, days.delete_for_video),
    )
    analytics = AnalyticsService(
        sessions,
        raw_events,
        days,
        videos,
        catalogue,
        metrics,
        settings.analytics,
        clock,
        on_views=on_views or av1.on_views,
        # checked on every report: counted in the process on memory:// (one process, no TTL walks)
        throttle=Throttle(MemoryRateLimiter() if db.in_memory else RateLimiter(db), clock),
        weekly=weekly,
    )
    return Services(
        settings=settings,
        db=db,
        clock=clock,
        hasher=hasher,
        media=media,
        throttle=Throttle(RateLimiter(db), clock),
        pool=pool,
        queue=queue,
        mailer=mailer,
        accounts=accounts,
        grants=grants,
        catalogue=catalogue,
        admin=AdminService(
            queue,
            accounts,
            (progress.delete_for_user, mylist_rows.delete_for_user, analytics.forget_user),
        ),
        metrics=metrics,
        sampler=Sampler(
            metrics, jobs.counts, list(queue.types), db.ping, interval_s=settings.metrics.interval_s
        ),
        health=Health(db.ping),
        audio_tracks=audio_tracks,
        uploads=UploadService(upload_files, media, catalogue, settings.media, clock, free_bytes),
        av1=av1,
        tracks=TracksService(ladder_tracks, videos, grants, catalogue),
        analytics=analytics,
        mylist=MyListService(mylist_rows, catalogue, clock),
        upload_expiry=UploadExpiry(upload_files) if settings.server.role != "transcode" else None,
    )
