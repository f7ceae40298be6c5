"""The base of every API handler: who is calling, what they may do, and errors as JSON."""

from __future__ import annotations

import http.client
import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import urlencode

import orjson
import tornado.web
from pydantic import BaseModel, ValidationError

from core import logs
from core.errors import (
    DomainError,
    Forbidden,
    Inactive,
    NotVerified,
    Unauthenticated,
    status_of,
)
from core.validation import field_errors
from services.facade import HandlerServices
from services.vocabulary import User

log = logging.getLogger("videoflix.api")
access_log = logging.getLogger("videoflix.access")

# Access levels every handler method declares; anything else refuses to start.
PUBLIC, USER, STAFF = "public", "user", "staff"
HTTP_METHODS = ("get", "head", "post", "put", "patch", "delete", "options")
# nginx's status for a request whose client closed the connection before the answer.
CLIENT_ABORT = 499

F = TypeVar("F", bound=Callable[..., Any])

# Messages a DRF front-end already knows.
DEFAULT_DETAILS = {
    400: "Bad request.",
    401: "Authentication credentials were not provided.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    409: "Conflict.",
    413: "Request body too large.",
    415: "Unsupported media type.",
    429: "Request was throttled.",
    500: "A server error occurred.",
    503: "Service unavailable.",
    507: "Not enough storage space on the server.",
}


class APIError(tornado.web.HTTPError):
    """An HTTP-level refusal (media type, framing, size from the headers) whose JSON body the client sees.
    Rules raise domain errors instead (core.errors); `write_error` maps both."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status)
        self.body: dict[str, Any] = fields or {"detail": detail or DEFAULT_DETAILS.get(status, "Error.")}
        self.headers = headers or {}


# Dates, dataclasses and keys that are not strings come out as the json module wrote them.
DUMPS_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS


def encode(value: Any) -> Any:
    """What the JSON writer cannot write itself: a reply model (handlers/replies.py) as its JSON, anything
    else (ids, dates) as a string."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


def dumps(data: Any) -> bytes:
    """The one JSON encoding of every answer, success or error: compact UTF-8, reply models as their JSON,
    dates and ids as strings."""
    try:
        return orjson.dumps(data, default=encode, option=DUMPS_OPTIONS)
    except orjson.JSONEncodeError:
        # what orjson refuses to write (an int past 64 bits, a lone surrogate) is still an answer
        return json.dumps(data, separators=(",", ":"), default=encode).encode()


def loads(body: bytes) -> Any:
    """A JSON body, parsed no deeper than 1,024 levels (orjson's limit): ValueError when malformed."""
    return orjson.loads(body)


def validation_context(services: HandlerServices) -> dict[str, Any]:
    """The settings request fields and headers are validated against, by name: from the
    configuration, and the job types the app's queue was built with."""
    return {
        "password_min_length": services.settings.accounts.password_min_length,
        "job_types": tuple(services.admin.job_types()),
        "max_upload_bytes": services.uploads.max_bytes,
    }


GRANT_IN_PATH = re.compile(r"^/api/stream/[^/]+/")


def loggable_path(path: str) -> str:
    """The path with any stream grant (a bearer credential) blanked out, for logs."""
    return GRANT_IN_PATH.sub("/api/stream/<grant>/", path)


def access(level: str) -> Callable[[F], F]:
    """Declare who may call a handler method: PUBLIC, USER (verified, active) or STAFF."""
    if level not in (PUBLIC, USER, STAFF):
        raise ValueError(f"unknown access level {level!r}")

    def mark(method: F) -> F:
        method.access = level  # type: ignore[attr-defined]
        return method

    return mark


public, user_only, staff_only = access(PUBLIC), access(USER), access(STAFF)


class UndeclaredAccess(Exception):
    """A handler method says nothing about who may call it."""


def check_access_declared(handler_classes: Iterable[type]) -> None:
    """Refuse to build an app in which a handler method has no access declaration."""
    for cls in handler_classes:
        for name in HTTP_METHODS:
            method = getattr(cls, name, None)
            if method is None or method is getattr(tornado.web.RequestHandler, name, None):
                continue
            if getattr(method, "access", None) not in (PUBLIC, USER, STAFF):
                raise UndeclaredAccess(
                    f"{cls.__module__}.{cls.__name__}.{name} declares no access level "
                    "(mark it @public, @user_only or @staff_only)"
                )


class BaseHandler(tornado.web.RequestHandler):
    """Resolves the caller from the token, enforces the method's access level, speaks JSON."""

    current_user: User | None

    token: str | None = None
    counted_in_flight = False

    @property
    def services(self) -> HandlerServices:
        """The services as handlers see them (services/facade.py), cut from the composition root's."""
        return self.application.settings["services"]

    @property
    def user(self) -> User:
        """The caller of a @user_only or @staff_only method (`prepare` lets no one else in)."""
        if self.current_user is None:
            raise Unauthenticated()
        return self.current_user

    @property
    def config(self) -> Any:
        """The server's settings (Tornado's own `settings` are the application's)."""
        return self.services.settings

    def client_ip(self) -> str:
        """The client's address; X-Forwarded-For is believed only from a trusted proxy."""
        address = self.request.remote_ip or ""
        trusted = self.config.server.trusted_proxies
        if address not in trusted:
            return address
        forwarded = [part.strip() for part in self.request.headers.get("X-Forwarded-For", "").split(",")]
        for hop in reversed([part for part in forwarded if part]):
            if hop not in trusted:
                return hop
        return address

    @property
    def request_id(self) -> str:
        """The caller's X-Request-ID when it is printable and short, else a new one; set for the logs."""
        if not hasattr(self, "_request_id"):
            self._request_id = logs.valid_request_id(self.request.headers.get("X-Request-ID"))
            logs.request_id.set(self._request_id)
        return self._request_id

    def set_default_headers(self) -> None:
        self.set_header("X-Request-ID", self.request_id)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        origin = self.request.headers.get("Origin")
        if origin and origin in self.application.settings["cors_origins"]:
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Allow-Credentials", "true")
            self.set_header("Access-Control-Expose-Headers", "Retry-After, Content-Range, ETag, X-Request-ID")
            self.add_header("Vary", "Origin")

    async def prepare(self) -> None:
        self.services.metrics.in_flight.inc()
        self.counted_in_flight = True  # the access log (handlers/app.py) counts it out
        # No file, id or name holds a NUL, so such a path names nothing (404), on every route, before the
        # file system could refuse it (ValueError). A path argument that is not UTF-8 is refused by
        # Tornado before this (400).
        if any("\x00" in arg for arg in (*self.path_args, *self.path_kwargs.values())):
            raise APIError(404)
        method = getattr(self, self.request.method.lower(), None)
        level = getattr(method, "access", None)
        self.current_user = None
        if level is None:
            return  # not implemented here: Tornado answers 405
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "token" and token.strip():
            self.token = token.strip()
            self.current_user = await self.services.accounts.user_for_token(self.token)
            if self.current_user is None and level != PUBLIC:
                raise Unauthenticated("Invalid token.")
        if level == PUBLIC:
            return
        user = self.current_user
        if user is None:
            raise Unauthenticated()
        if not user.is_active:
            raise Inactive()
        if not user.is_verified:
            raise NotVerified()
        if level == STAFF and not user.is_staff:
            raise Forbidden()

    def on_connection_close(self) -> None:
        """The client went before the answer (a body cut off short of its Content-Length, say): the
        streamed body is failed so that the handler stops waiting, and the request is logged once as a
        client abort, at INFO: the client's doing, not the server's."""
        super().on_connection_close()
        if not self._finished:
            self.log_client_abort()

    def log_client_abort(self) -> None:
        """The access line with status 499 (nginx's name for a client that closed first); it also
        counts the request out of the in-flight gauge."""
        self.set_status(CLIENT_ABORT, "Client Closed Request")
        self.application.log_request(self)
        self.counted_in_flight = False  # the access log must not count it out again

    @public
    def options(self, *args: str) -> None:
        """CORS preflight: allowed origins get the methods and headers they may use."""
        self.set_status(204)
        if self._headers.get("Access-Control-Allow-Origin"):
            methods = [m.upper() for m in HTTP_METHODS if self._implements(m)]
            self.set_header("Access-Control-Allow-Methods", ", ".join(methods))
            self.set_header(
                "Access-Control-Allow-Headers", "Authorization, Content-Type, Range, X-Request-ID"
            )
            self.set_header("Access-Control-Max-Age", "600")
        self.clear_header("Content-Type")
        self.finish()

    def _implements(self, name: str) -> bool:
        method = getattr(type(self), name, None)
        return method is not None and hasattr(method, "access")

    def json_body(self) -> Any:
        """The request body as JSON: 415 when it is declared as something else, 400 when malformed or
        nested too deep (never a RecursionError: the parser stops at a fixed depth)."""
        content_type = self.request.headers.get("Content-Type", "application/json")
        media_type = content_type.split(";")[0].strip().lower()
        if media_type and media_type != "application/json" and not media_type.endswith("+json"):
            raise APIError(415, f'Unsupported media type "{media_type}" in request.')
        if not self.request.body:
            return {}
        try:
            return loads(self.request.body)
        except ValueError as err:
            raise APIError(400, f"JSON parse error - {err}") from err

    def validation_context(self) -> dict[str, Any]:
        """The settings that fields read when they validate (core.validation.min_length_from); the
        OpenAPI document (handlers/schema.py) shows the same values."""
        return validation_context(self.services)

    def parse(self, model: type[BaseModel]) -> Any:
        """Validate the JSON body against a model: field errors answer 400 in DRF's shape."""
        body = self.json_body()
        if not isinstance(body, dict):
            raise APIError(400, "Expected a JSON object.")
        return self.validate(model, body, self.validation_context())

    @staticmethod
    def validate(model: type[BaseModel], data: dict[str, Any], context: dict[str, Any] | None = None) -> Any:
        """Validate data against a model: field errors answer 400 in DRF's shape."""
        try:
            return model.model_validate(data, context=context)
        except ValidationError as err:
            raise APIError(400, fields=field_errors(err)) from err

    def query(self, model: type[BaseModel]) -> Any:
        """Validate the query parameters against a model (the last value of each): 400 field errors."""
        arguments = self.request.query_arguments
        data = {name: self.get_query_argument(name) for name in model.model_fields if name in arguments}
        return self.validate(model, data, self.validation_context())

    def send_page(self, results: list[Any], count: int, offset: int, limit: int) -> None:
        """DRF's limit/offset envelope: {count, next, previous, results}."""
        self.send_json(
            {
                "count": count,
                "next": self.page_url(offset + limit, limit) if offset + limit < count else None,
                "previous": self.page_url(max(0, offset - limit), limit) if offset > 0 else None,
                "results": results,
            }
        )

    def page_url(self, offset: int, limit: int) -> str:
        """The absolute URL of another page, keeping the other parameters (as DRF does)."""
        # the raw bytes, re-quoted as they came: a value that is not UTF-8 is kept, never decoded here
        params: dict[str, str | bytes] = {
            k: v[-1] for k, v in self.request.query_arguments.items() if k not in ("limit", "offset")
        }
        params.update(limit=str(limit), offset=str(offset))
        public = (self.config.server.public_url or "").rstrip("/")
        origin = public or f"{self.request.protocol}://{self.request.host}"
        return f"{origin}{self.request.path}?{urlencode(params)}"

    def send_json(self, data: Any, status: int = 200) -> None:
        """Finish with a JSON body (lists too, which Tornado's write refuses)."""
        self.set_status(status)
        self.finish(dumps(data))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Log a crash: its type, message and traceback, the method and the path (never the query or the
        headers, which carry codes and tokens; core/logs.py redacts secrets in the rest). Errors answered
        on purpose are not crashes."""
        if isinstance(value, tornado.web.HTTPError | DomainError):
            return
        log.error(
            "uncaught %s in %s %s: %s",
            getattr(typ, "__qualname__", typ),
            self.request.method,
            loggable_path(self.request.path),
            value,
            exc_info=(typ, value, tb),
        )

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error is the contract's JSON; never HTML or a traceback, debug or not."""
        error = kwargs.get("exc_info", (None, None, None))[1]
        self.clear_header("Content-Disposition")
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        if isinstance(error, DomainError):
            self.set_status(status_of(error))  # Tornado sent it as a 500: it is an answer, not a crash
        if isinstance(error, APIError | DomainError):
            body = error.body
            for name, value in error.headers.items():
                self.set_header(name, value)
        elif status_code == 405:
            body = {"detail": f'Method "{self.request.method}" not allowed.'}
            allowed = [m.upper() for m in HTTP_METHODS if self._implements(m)]
            self.set_header("Allow", ", ".join(allowed))
        else:
            default = http.client.responses.get(status_code, "Error") + "."
            body = {"detail": DEFAULT_DETAILS.get(status_code, default)}
        self.finish(dumps(body))


class NotFoundHandler(BaseHandler):
    """The last route: any unknown path answers a JSON 404, whatever the method."""

    @public
    async def get(self, *args: str) -> None:
        raise APIError(404)

    head = post = put = patch = delete = get
