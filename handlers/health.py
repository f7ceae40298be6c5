"""Liveness and readiness probes for load balancers, Docker and orchestrators."""

from __future__ import annotations

from handlers.base import APIError, BaseHandler, public
from handlers.openapi import api
from handlers.replies import Status


class HealthHandler(BaseHandler):
    """The process is up and its IOLoop answers; touches no database."""

    @api("Liveness: the process answers", responses={200: Status})
    @public
    def get(self) -> None:
        self.send_json({"status": "ok"})

    head = get


class ReadyHandler(BaseHandler):
    """The process can serve: the database answers a ping."""

    @api("Readiness: the database answers", responses={200: Status}, errors=[503])
    @public
    async def get(self) -> None:
        if not await self.services.health.ready():
            raise APIError(503, "The database does not answer.")
        self.send_json({"status": "ok"})


routes = [
    (r"/api/health/?", HealthHandler),
    (r"/api/ready/?", ReadyHandler),
]
