"""My list: videos a user keeps for later, shown as the catalogue shows videos."""

from __future__ import annotations

from core.clock import Clock
from models.mylist import MyList
from models.users import User
from services.catalogue import CatalogueService, VideoView


class MyListService:
    """Add, remove and list the caller's videos; only videos the caller may see are listed."""

    def __init__(self, rows: MyList, catalogue: CatalogueService, clock: Clock) -> None:
        self.rows = rows
        self.catalogue = catalogue
        self.clock = clock

    async def add(self, user: User, video_id: str) -> None:
        """Put a video the user may see on the list (again: nothing changes)."""
        video = await self.catalogue.visible_video(user, video_id)
        await self.rows.add(user.id, video.id, self.clock())

    async def remove(self, user: User, video_id: str) -> None:
        """Take a video off the list (one not on it: nothing changes)."""
        video = await self.catalogue.visible_video(user, video_id)
        await self.rows.remove(user.id, video.id)

    async def page(self, user: User, offset: int, limit: int | None) -> tuple[list[VideoView], int]:
        """The list, most recently added first, and how many it holds."""
        ids = await self.rows.video_ids(user.id)
        found = await self.catalogue.videos.by_ids(ids)
        videos = [found[i] for i in ids if i in found and self.catalogue.may_see(user, found[i])]
        end = None if limit is None else offset + limit
        return await self.catalogue.serialize(user, videos[offset:end]), len(videos)
