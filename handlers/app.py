"""The app factory: joins every handler module's routes and the parts they share."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tornado.web

from core.clock import Clock, utcnow
from core.config import Settings
from core.mail import Mailer
from core.media import MediaStore
from core.passwords import PasswordHasher
from core.signing import Signer
from handlers import accounts, categories, health, stream, videos
from handlers.base import NotFoundHandler, check_access_declared, loggable_path
from models.accounts import AccountService
from models.catalogue import CatalogueService
from models.db import Database
from models.ratelimits import RateLimiter
from transcode.runner import Transcoder

access_log = logging.getLogger("videoflix.access")

HANDLER_MODULES = [health, accounts, categories, videos, stream]


@dataclass
class Services:
    """What handlers share: reached as `self.services` in a handler."""

    settings: Settings
    db: Database
    mailer: Mailer
    transcoder: Transcoder | None
    accounts: AccountService
    hasher: PasswordHasher
    ratelimiter: RateLimiter
    catalogue: CatalogueService
    media: MediaStore
    clock: Clock


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def media_root(config: Settings) -> Path:
    """MEDIA_ROOT as an absolute path: a relative one is taken beside server.py."""
    root = Path(config.media.root)
    return root if root.is_absolute() else Path(__file__).resolve().parent.parent / root


def log_request(handler: tornado.web.RequestHandler) -> None:
    """One line a request: method, path, status, milliseconds; never a query, token, code or grant."""
    status = handler.get_status()
    level = logging.INFO if status < 500 else logging.ERROR
    millis = 1000.0 * handler.request.request_time()
    access_log.log(
        level, "%s %s %d %.1fms", handler.request.method, loggable_path(handler.request.path), status, millis
    )


def make_app(
    config: Settings,
    *,
    db: Database,
    mailer: Mailer | None = None,
    transcoder: Transcoder | None = None,
    clock: Clock = utcnow,
    hasher: PasswordHasher | None = None,
    handler_modules: Sequence[Any] = HANDLER_MODULES,
) -> tornado.web.Application:
    """Build the Tornado application from its parts; tests inject fakes where a real part can't run."""
    hasher = hasher or PasswordHasher(config.accounts.bcrypt_rounds)
    mailer = mailer or Mailer(db, config.email, clock=clock)
    signer = Signer(config.server.secret_key or "", clock)
    account_service = AccountService(
        db,
        hasher,
        clock=clock,
        settings=config.accounts,
        mailer=mailer,
        signer=signer,
        frontend_url=config.server.frontend_url,
    )
    media = MediaStore(media_root(config))
    # Nothing outside this process writes to the in-memory database: its cache needs no TTL.
    cache_ttl_s = (
        math.inf if db.in_memory and config.catalogue.cache_ttl_s > 0 else config.catalogue.cache_ttl_s
    )
    catalogue = CatalogueService(db, media, clock, cache_ttl_s=cache_ttl_s)
    grants = stream.Grants(signer, clock)
    catalogue.url_maker = lambda doc, user: grants.urls(doc, user.id)
    if transcoder is not None:
        transcoder.attach(catalogue.videos)
        catalogue.on_job_queued = transcoder.wake
        catalogue.on_video_deleted = transcoder.cancel
    services = Services(
        config, db, mailer, transcoder, account_service, hasher, RateLimiter(db), catalogue, media, clock
    )
    routes: list[Any] = [route for module in handler_modules for route in module.routes]
    routes.append((r".*", NotFoundHandler))
    check_access_declared(route[1] for route in routes)
    cors = {origin_of(config.server.frontend_url), *config.server.cors_origins}
    return tornado.web.Application(
        routes,
        services=services,
        cors_origins=cors,
        log_function=log_request,
        debug=False,  # debug mode would show tracebacks and autoreload; DEBUG only relaxes SECRET_KEY
        xheaders=False,
    )
