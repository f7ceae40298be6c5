"""Staff tools under /api/admin/: the job queue, the mail, and users."""

from __future__ import annotations

from pydantic import StrictBool

from core.errors import InvalidField
from core.validation import Body
from handlers.base import BaseHandler, staff_only
from models.jobs import STATES
from services.admin import AdminService

DEFAULT_LIMIT, MAX_LIMIT = 50, 200
MAX_SEARCH_WORDS = 10


class UserFlags(Body):
    is_staff: StrictBool | None = None
    is_active: StrictBool | None = None


class AdminHandler(BaseHandler):
    @property
    def admin(self) -> AdminService:
        return self.services.admin

    def paging(self) -> tuple[int, int]:
        """offset and limit from the query (limit capped)."""
        limit = min(self.int_param("limit", 1) or DEFAULT_LIMIT, MAX_LIMIT)
        return self.int_param("offset", 0) or 0, limit

    def state_param(self) -> str | None:
        state = self.get_query_argument("state", None) or None
        if state is not None and state not in STATES:
            self.refuse_choice("state", STATES)
        return state

    def refuse_choice(self, name: str, choices: tuple[str, ...]) -> None:
        raise InvalidField(name, f"Select one of: {', '.join(choices)}.")


class JobListHandler(AdminHandler):
    @staff_only
    async def get(self) -> None:
        offset, limit = self.paging()
        type_name = self.get_query_argument("type", None) or None
        if type_name is not None and type_name not in self.services.queue.types:
            self.refuse_choice("type", tuple(self.services.queue.types))
        jobs, count = await self.admin.jobs(
            state=self.state_param(), type_name=type_name, offset=offset, limit=limit
        )
        self.send_page(jobs, count, offset, limit)


class JobRetryHandler(AdminHandler):
    @staff_only
    async def post(self, job_id: str) -> None:
        self.send_json(await self.admin.retry_job(job_id))


class JobCancelHandler(AdminHandler):
    @staff_only
    async def post(self, job_id: str) -> None:
        self.send_json(await self.admin.cancel_job(job_id))


class MailListHandler(AdminHandler):
    @staff_only
    async def get(self) -> None:
        offset, limit = self.paging()
        mails, count = await self.admin.mail(state=self.state_param(), offset=offset, limit=limit)
        self.send_page(mails, count, offset, limit)


class MailRetryHandler(AdminHandler):
    @staff_only
    async def post(self, mail_id: str) -> None:
        self.send_json(await self.admin.retry_mail(mail_id))


class UserListHandler(AdminHandler):
    @staff_only
    async def get(self) -> None:
        offset, limit = self.paging()
        search = tuple(self.get_query_argument("search", "").split()[:MAX_SEARCH_WORDS])
        users, count = await self.admin.users(search, offset, limit)
        self.send_page(users, count, offset, limit)


class UserHandler(AdminHandler):
    @staff_only
    async def patch(self, user_id: str) -> None:
        body = self.parse(UserFlags)
        fields = body.model_dump(exclude_unset=True)
        self.send_json(await self.admin.update_user(self.current_user, user_id, fields))


routes = [
    (r"/api/admin/jobs/?", JobListHandler),
    (r"/api/admin/jobs/([^/]+)/retry/?", JobRetryHandler),
    (r"/api/admin/jobs/([^/]+)/cancel/?", JobCancelHandler),
    (r"/api/admin/mail/?", MailListHandler),
    (r"/api/admin/mail/([^/]+)/retry/?", MailRetryHandler),
    (r"/api/admin/users/?", UserListHandler),
    (r"/api/admin/users/([^/]+)/?", UserHandler),
]
