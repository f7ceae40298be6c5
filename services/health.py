"""Readiness: whether this process can serve, asked of the services rather than of the database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable


class Health:
    """Answers the readiness probe."""

    def __init__(self, ping: Callable[[], Awaitable[bool]]) -> None:
        self.ping = ping

    async def ready(self) -> bool:
        """True when the database answers a ping."""
        return await self.ping()
