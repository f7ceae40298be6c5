"""GET /metrics: the Prometheus text format, behind a bearer token on the main port or on a port of its own.

Neither `metrics.token` (METRICS_TOKEN) nor `metrics.port` (METRICS_PORT) set: /metrics is a 404, as
any unknown path. On the main port only the token opens it; on the metrics port the token is asked
for too when one is set.
"""

from __future__ import annotations

import hmac

import tornado.web

from handlers.base import APIError, BaseHandler, NotFoundHandler, public
from handlers.openapi import Reply, api
from services.container import Services
from services.facade import for_handlers

METRICS_REPLY = Reply("Every metric in Prometheus' text format (version 0.0.4).", media_types=("text/plain",))


class MetricsHandler(BaseHandler):
    """The scrape endpoint; the port it answers on decides whether a token is needed."""

    def initialize(self, own_port: bool = False) -> None:
        self.own_port = own_port

    @api(
        "Prometheus metrics (METRICS_TOKEN as a Bearer token, or the metrics port)",
        responses={200: METRICS_REPLY},
        errors=[401, 404],
    )
    @public
    def get(self) -> None:
        token = self.config.metrics.token
        if not token and not self.own_port:
            raise APIError(404)
        if token and not self.bearer_matches(token):
            raise APIError(
                401,
                "A valid metrics token is required.",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        metrics = self.services.metrics
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.finish(metrics.exposition())

    def bearer_matches(self, token: str) -> bool:
        scheme, _, given = self.request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


routes = [
    (r"/metrics/?", MetricsHandler),
]


def count_out(handler: tornado.web.RequestHandler) -> None:
    """The metrics port's log function: only ends the request's in-flight count."""
    if getattr(handler, "counted_in_flight", False):
        handler.application.settings["services"].metrics.in_flight.dec()


def metrics_app(services: Services) -> tornado.web.Application:
    """The app of the metrics port: /metrics and nothing else (JSON 404 for the rest)."""
    return tornado.web.Application(
        [(r"/metrics/?", MetricsHandler, {"own_port": True}), (r".*", NotFoundHandler)],
        services=for_handlers(services),
        handler_modules=[],
        cors_origins=set(),
        log_function=count_out,  # scrapes are not worth a log line each
        debug=False,
        xheaders=False,
    )
