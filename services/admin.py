"""What staff do through /api/admin/: look at and steer the job queue and the mail, manage users."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from core.errors import Conflict, InvalidInput, NotFound
from models.jobs import Job
from models.users import User
from services.accounts import AccountService
from services.jobs import JobQueue
from services.mail import MAIL

# What else goes with a deleted user (progress, My list, playback sessions): each called with its id.
UserCleanup = Callable[[str], Awaitable[Any]]


class AdminService:
    """Staff operations over the queue and the accounts."""

    def __init__(
        self, queue: JobQueue, accounts: AccountService, user_cleanups: Sequence[UserCleanup] = ()
    ) -> None:
        self.queue = queue
        self.accounts = accounts
        self.user_cleanups = tuple(user_cleanups)

    def job_types(self) -> tuple[str, ...]:
        """The job types this server's queue knows (each may run in another process)."""
        return tuple(self.queue.types)

    async def jobs(
        self, *, state: str | None, type_name: str | None, offset: int, limit: int
    ) -> tuple[list[Job], int]:
        """Jobs newest first, with attempts, last error, lease holder and timings."""
        types = [type_name] if type_name else None
        return await self.queue.page(state=state, types=types, offset=offset, limit=limit)

    async def retry_job(self, job_id: str) -> Job:
        return await self.queue.retry(job_id)

    async def cancel_job(self, job_id: str) -> Job:
        return await self.queue.cancel(job_id)

    async def mail(self, *, state: str | None, offset: int, limit: int) -> tuple[list[Job], int]:
        """Queued, sent and failed mails (jobs of the mail type) newest first."""
        return await self.queue.page(state=state, types=[MAIL], offset=offset, limit=limit)

    async def retry_mail(self, mail_id: str) -> Job:
        """Send a failed mail again (it kept its body)."""
        job = await self.queue.get(mail_id)
        if job is None or job.type != MAIL:
            raise NotFound()
        if "text" not in job.payload:
            raise Conflict("The mail was sent and its text dropped: it cannot be sent again.")
        return await self.queue.retry(mail_id)

    async def users(
        self, search: tuple[str, ...], offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        found, count = await self.accounts.page_users(search, offset, limit)
        return [user.to_admin_api() for user in found], count

    async def update_user(self, acting: User, user_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Set is_staff / is_active; deactivation revokes the user's tokens and grants."""
        if user_id == acting.id and (fields.get("is_staff") is False or fields.get("is_active") is False):
            raise InvalidInput("You cannot take away your own staff rights or deactivate yourself.")
        user = await self.accounts.set_flags(
            user_id, is_staff=fields.get("is_staff"), is_active=fields.get("is_active")
        )
        return user.to_admin_api()

    async def delete_user(self, acting: User, user_id: str) -> None:
        """Delete a user with their tokens, watch progress, My list and playback data."""
        if user_id == acting.id:
            raise InvalidInput("You cannot delete yourself.")
        await self.accounts.delete_user(user_id)
        for cleanup in self.user_cleanups:
            await cleanup(user_id)
