"""What handlers see of the services: the rules they call, and nothing that reaches past them.

The composition root (services/container.py) builds `Services`, which the server, the tests and the
benches hold for start-up and shut-down. `for_handlers` cuts from it the one object a handler reaches
as `self.services`: no database, job queue or process pool on it, so a handler that wants one of those
asks a service instead (readiness: `health.ready()`; job types: `admin.job_types()`).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.config import Settings
from core.metrics import Metrics
from services.accounts import AccountService
from services.admin import AdminService
from services.analytics import AnalyticsService
from services.catalogue import CatalogueService
from services.container import Services
from services.grants import Grants
from services.health import Health
from services.media import Media
from services.mylist import MyListService
from services.throttle import Throttle
from services.tracks import TracksService
from services.uploads import UploadService


@dataclass(frozen=True)
class HandlerServices:
    """The services as handlers reach them (`self.services`)."""

    settings: Settings
    accounts: AccountService
    catalogue: CatalogueService
    grants: Grants
    uploads: UploadService
    admin: AdminService
    throttle: Throttle
    metrics: Metrics
    health: Health
    media: Media
    tracks: TracksService
    analytics: AnalyticsService
    mylist: MyListService


def for_handlers(services: Services) -> HandlerServices:
    """The handlers' view of the services the composition root built."""
    return HandlerServices(
        settings=services.settings,
        accounts=services.accounts,
        catalogue=services.catalogue,
        grants=services.grants,
        uploads=services.uploads,
        admin=services.admin,
        throttle=services.throttle,
        metrics=services.metrics,
        health=services.health,
        media=services.media,
        tracks=services.tracks,
        analytics=services.analytics,
        mylist=services.mylist,
    )
