"""The one error type a client sees: raised by handlers and services alike."""

from __future__ import annotations

from typing import Any

import tornado.web

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
    """An error whose JSON body the client sees: a detail sentence or field errors."""

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
