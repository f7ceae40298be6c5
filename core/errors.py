"""Domain errors: what services raise when a rule says no. One place (handlers/base.py) maps them to HTTP.

Each carries the contract's sentence for the client: a `detail`, or `fields` for field errors.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rule refused the request; `detail` or `fields` is what the client reads."""

    default_detail = "The request could not be carried out."

    def __init__(
        self,
        detail: str | None = None,
        *,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        self.fields = fields
        self.headers = headers or {}
        super().__init__(self.detail if fields is None else str(fields))

    @property
    def body(self) -> dict[str, Any]:
        """The JSON body a client sees."""
        return dict(self.fields) if self.fields else {"detail": self.detail}


class InvalidInput(DomainError):
    """The request is malformed or breaks a rule about its values (400)."""

    default_detail = "Bad request."


class InvalidField(InvalidInput):
    """One field's value is refused: {"field": ["sentence"]} (400)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(fields={field: [message]})


class ChecksumMismatch(InvalidInput):
    """The body does not match the checksum the client sent with it (tus: 460)."""

    default_detail = "The checksum of the body does not match the Upload-Checksum header."


class Unauthenticated(DomainError):
    """No valid credentials (401)."""

    default_detail = "Authentication credentials were not provided."


class NotVerified(Unauthenticated):
    """The account's address is not verified yet (401)."""

    default_detail = "User account not verified."


class Inactive(Unauthenticated):
    """The account was deactivated (401)."""

    default_detail = "User account not active."


class Forbidden(DomainError):
    """Authenticated, but not allowed (403)."""

    default_detail = "You do not have permission to perform this action."


class NotFound(DomainError):
    """No such thing, or not visible to the caller (404)."""

    default_detail = "Not found."


class Conflict(DomainError):
    """The current state forbids it (409)."""

    default_detail = "Conflict."


class Locked(Conflict):
    """Another request holds the resource for now; try again shortly (423, with Retry-After)."""

    default_detail = "The resource is locked."


class Gone(DomainError):
    """It existed and has expired (410)."""

    default_detail = "The resource has expired."


class TooLarge(DomainError):
    """Over a size limit (413)."""

    default_detail = "Request body too large."


class Throttled(DomainError):
    """Rate limited; `retry_after_s` goes into Retry-After (429)."""

    default_detail = "Request was throttled."

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"Request was throttled. Expected available in {retry_after_s} seconds.",
            headers={"Retry-After": str(retry_after_s)},
        )


class Unavailable(DomainError):
    """A dependency (database, object store) does not answer (503)."""

    default_detail = "Service unavailable."


class InsufficientStorage(DomainError):
    """Not enough room for an upload (507)."""

    default_detail = "Not enough storage space on the server."


# The HTTP status of each domain error; subclasses inherit their parent's.
STATUS = {
    ChecksumMismatch: 460,
    InvalidInput: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Locked: 423,
    Gone: 410,
    TooLarge: 413,
    Throttled: 429,
    Unavailable: 503,
    InsufficientStorage: 507,
}


def status_of(error: DomainError) -> int:
    """The HTTP status for a domain error (the nearest declared ancestor's)."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400
