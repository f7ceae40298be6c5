"""The app factory: joins every handler module's routes over the services the composition root built."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import tornado.web

from core.config import DEV_FRONTEND_ORIGIN
from handlers import (
    accounts,
    admin,
    categories,
    health,
    metrics,
    mylist,
    playback,
    schema,
    stream,
    tracks,
    tus,
    videos,
    webapp,
)
from handlers.base import HTTP_METHODS, NotFoundHandler, access_log, check_access_declared, loggable_path
from handlers.route_templates import routes_of
from services.container import Services
from services.facade import for_handlers

# webapp last: its verify-page route must not shadow an API route.
HANDLER_MODULES: list[ModuleType] = [
    health,
    accounts,
    categories,
    mylist,  # before videos: /api/videos/mylist/ is not a video id
    playback,
    videos,
    tracks,
    tus,
    stream,
    admin,
    schema,
    metrics,
    webapp,
]
# A transcode process serves only its probes and metrics; the others serve the whole API.
ROLE_HANDLERS: dict[str, list[ModuleType]] = {"transcode": [health, metrics]}


def handler_modules_for(role: str) -> list[ModuleType]:
    """The handler modules a process of this role serves."""
    return ROLE_HANDLERS.get(role, HANDLER_MODULES)


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def log_request(handler: tornado.web.RequestHandler) -> None:
    """One line a request: method, path, status, milliseconds; never a query, token, code or grant."""
    status = handler.get_status()
    level = logging.INFO if status < 500 else logging.ERROR
    millis = 1000.0 * handler.request.request_time()
    access_log.log(
        level, "%s %s %d %.1fms", handler.request.method, loggable_path(handler.request.path), status, millis
    )
    count_request(handler, status)


def count_request(handler: tornado.web.RequestHandler, status: int) -> None:
    """Metrics of an answered request, by route template (a raw path would be a series per id)."""
    services = handler.application.settings.get("services")
    if services is None:
        return
    if getattr(handler, "counted_in_flight", False):
        services.metrics.in_flight.dec()
    method = handler.request.method if handler.request.method.lower() in HTTP_METHODS else "OTHER"
    route = handler.application.settings.get("route_templates", {}).get(type(handler), "<unmatched>")
    services.metrics.request_done(method, route, status, handler.request.request_time())


def make_app(
    services: Services, *, handler_modules: Sequence[ModuleType] = HANDLER_MODULES
) -> tornado.web.Application:
    """Build the Tornado application over the services (handlers see `for_handlers` of them); refuses a
    handler that declares no access."""
    config = services.settings
    routes: list[Any] = [route for module in handler_modules for route in module.routes]
    routes.append((r".*", NotFoundHandler))
    check_access_declared(route[1] for route in routes)
    frontend = config.server.frontend_url
    cors = {origin_of(frontend) if frontend else DEV_FRONTEND_ORIGIN, *config.server.cors_origins}
    return tornado.web.Application(
        routes,
        services=for_handlers(services),
        handler_modules=list(handler_modules),  # the OpenAPI document (handlers/schema.py) reads them
        cors_origins=cors,
        log_function=log_request,
        route_templates={route.handler: route.template for route in routes_of(handler_modules)},
        debug=False,  # debug mode would show tracebacks and autoreload; DEBUG only relaxes SECRET_KEY
        xheaders=False,
    )
