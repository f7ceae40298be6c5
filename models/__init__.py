"""MongoDB documents and the queries on them."""

from __future__ import annotations

from models import (
    categories,
    jobs,
    mylist,
    playback,
    progress,
    ratelimits,
    tokens,
    uploads,
    users,
    videos,
)
from models.db import Database

COLLECTION_INDEXES = {
    "users": users.INDEXES,
    "tokens": tokens.INDEXES,
    "ratelimits": ratelimits.INDEXES,
    "categories": categories.INDEXES,
    "videos": videos.INDEXES,
    "progress": progress.INDEXES,
    "jobs": jobs.INDEXES,
    "uploads": uploads.INDEXES,
    "mylist": mylist.INDEXES,
    "playback_sessions": playback.SESSIONS_INDEXES,
    "playback_events": playback.EVENTS_INDEXES,
    "video_days": playback.DAYS_INDEXES,
}


async def ensure_indexes(db: Database) -> None:
    """Create every index the server's queries need (idempotent), after moving older documents on."""
    await jobs.migrate_legacy(db)
    for name, indexes in COLLECTION_INDEXES.items():
        await db.db[name].create_indexes(indexes)
