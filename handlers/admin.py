"""Staff tools under /api/admin/: the job queue, the mail, and users."""

from __future__ import annotations

from pydantic import Field, StrictBool

from core.validation import Body, Query, one_of, one_of_setting
from handlers.base import BaseHandler, staff_only
from handlers.openapi import api
from handlers.replies import AdminUser, AdminUserPage, Job, JobPage, Mail, MailPage
from services.admin import AdminService
from services.vocabulary import STATES

DEFAULT_LIMIT, MAX_LIMIT = 50, 200
MAX_SEARCH_WORDS = 10


class UserFlags(Body):
    is_staff: StrictBool | None = None
    is_active: StrictBool | None = None


class PageQuery(Query):
    limit: int | None = Field(
        None, ge=1, description=f"Page size (default {DEFAULT_LIMIT}, at most {MAX_LIMIT})."
    )
    offset: int | None = Field(None, ge=0, le=2**31 - 1, description="Start of the page.")


class MailQuery(PageQuery):
    state: one_of(STATES) | None = None


class JobsQuery(MailQuery):
    type: one_of_setting("job_types") | None = Field(None, description="A job type of this server.")


class UsersQuery(PageQuery):
    search: str = Field("", description="Words the e-mail or the names contain.")


class AdminHandler(BaseHandler):
    @property
    def admin(self) -> AdminService:
        return self.services.admin

    @staticmethod
    def paging(query: PageQuery) -> tuple[int, int]:
        """offset and limit from the query (limit capped)."""
        return query.offset or 0, min(query.limit or DEFAULT_LIMIT, MAX_LIMIT)


class JobListHandler(AdminHandler):
    @api("The job queue, newest first", query=JobsQuery, responses={200: JobPage})
    @staff_only
    async def get(self) -> None:
        query = self.query(JobsQuery)
        offset, limit = self.paging(query)
        jobs, count = await self.admin.jobs(
            state=query.state, type_name=query.type, offset=offset, limit=limit
        )
        self.send_page([Job.of(job) for job in jobs], count, offset, limit)


class JobRetryHandler(AdminHandler):
    @api("Run a failed or cancelled job again", responses={200: Job}, errors=[409])
    @staff_only
    async def post(self, job_id: str) -> None:
        self.send_json(Job.of(await self.admin.retry_job(job_id)))


class JobCancelHandler(AdminHandler):
    @api("Cancel a queued or running job", responses={200: Job}, errors=[409])
    @staff_only
    async def post(self, job_id: str) -> None:
        self.send_json(Job.of(await self.admin.cancel_job(job_id)))


class MailListHandler(AdminHandler):
    @api("Queued and sent mail (never the bodies)", query=MailQuery, responses={200: MailPage})
    @staff_only
    async def get(self) -> None:
        query = self.query(MailQuery)
        offset, limit = self.paging(query)
        mails, count = await self.admin.mail(state=query.state, offset=offset, limit=limit)
        self.send_page([Mail.of(mail) for mail in mails], count, offset, limit)


class MailRetryHandler(AdminHandler):
    @api("Send a failed mail again", responses={200: Mail}, errors=[409])
    @staff_only
    async def post(self, mail_id: str) -> None:
        self.send_json(Mail.of(await self.admin.retry_mail(mail_id)))


class UserListHandler(AdminHandler):
    @api("Users, searchable", query=UsersQuery, responses={200: AdminUserPage})
    @staff_only
    async def get(self) -> None:
        query = self.query(UsersQuery)
        offset, limit = self.paging(query)
        search = tuple(query.search.split()[:MAX_SEARCH_WORDS])
        users, count = await self.admin.users(search, offset, limit)
        self.send_page(users, count, offset, limit)


class UserHandler(AdminHandler):
    @api("Make a user staff or not, active or not", body=UserFlags, responses={200: AdminUser})
    @staff_only
    async def patch(self, user_id: str) -> None:
        body = self.parse(UserFlags)
        fields = body.model_dump(exclude_unset=True)
        self.send_json(await self.admin.update_user(self.user, user_id, fields))

    @api("Delete a user with their tokens, progress, My list and playback data", responses={204: None})
    @staff_only
    async def delete(self, user_id: str) -> None:
        await self.admin.delete_user(self.user, user_id)
        self.set_status(204)
        self.finish()


routes = [
    (r"/api/admin/jobs/?", JobListHandler),
    (r"/api/admin/jobs/([^/]+)/retry/?", JobRetryHandler),
    (r"/api/admin/jobs/([^/]+)/cancel/?", JobCancelHandler),
    (r"/api/admin/mail/?", MailListHandler),
    (r"/api/admin/mail/([^/]+)/retry/?", MailRetryHandler),
    (r"/api/admin/users/?", UserListHandler),
    (r"/api/admin/users/([^/]+)/?", UserHandler),
]
