"""Logging: a request id on every line of a request, secrets redacted, plain or JSON lines.

The request id lives in a context variable the HTTP layer sets per request (handlers/base.py); a Filter on
the handler copies it onto every record and redacts tokens, signed codes, grants, passwords and
Authorization values from the message and the traceback alike.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import uuid
from typing import IO

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

MAX_REQUEST_ID = 128
PRINTABLE_ID = re.compile(rf"^[\x21-\x7e]{{1,{MAX_REQUEST_ID}}}$")

REDACTED = "[redacted]"
SECRETS = [
    # Authorization: Token abc / "Authorization": "Bearer abc"
    (
        re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(?:(?:token|bearer|basic)\s+)?[^\s'\",}]+"),
        r"\1" + REDACTED,
    ),
    # password=..., "new_password": "...", password: ...
    (re.compile(r"(?i)(\w*password\w*['\"]?\s*[:=]\s*['\"]?)[^\s'\",}&]+"), r"\1" + REDACTED),
    # codes and tokens in a query string
    (re.compile(r"(?i)([?&](?:code|token|grant|key)=)[^&\s'\"]+"), r"\1" + REDACTED),
    # a stream grant in a path
    (re.compile(r"(/api/stream/)(?!<grant>/)[^/\s'\"]+"), r"\1" + REDACTED),
    # itsdangerous codes and grants: payload.timestamp.signature (URL-safe base64 parts)
    (re.compile(r"\b[\w-]{2,}\.[\w-]{4,}\.[\w-]{20,}\b"), REDACTED),
    # login tokens: 40 or more hex digits
    (re.compile(r"\b[0-9a-fA-F]{40,}\b"), REDACTED),
]


def redact(text: str) -> str:
    """The text with every known secret pattern replaced."""
    for pattern, replacement in SECRETS:
        text = pattern.sub(replacement, text)
    return text


def valid_request_id(value: str | None) -> str:
    """The caller's X-Request-ID when it is printable and at most 128 characters, else a new one."""
    if value and PRINTABLE_ID.match(value):
        return value
    return uuid.uuid4().hex


class ContextFilter(logging.Filter):
    """Adds `request_id` to every record and redacts secrets in its message and traceback (except in a
    record logged with extra={"unredacted": True}: the console mail backend's, for development)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        if getattr(record, "unredacted", False):  # the console mail backend shows its links on purpose
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the line
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[0] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(text)
            record.exc_info = None  # the redacted text is what formatters print
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


PLAIN = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


def log_handler(fmt: str = "plain", stream: IO[str] | None = None) -> logging.Handler:
    """A stream handler with the context filter and the chosen format (plain or json)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
                rename_fields={"levelname": "level", "asctime": "time", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter(PLAIN))
    return handler


def configure(fmt: str = "plain", level: int = logging.INFO) -> None:
    """Root logging: one handler on stderr in this format."""
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "videoflix", False):  # ours from an earlier call; others (a test's) stay
            root.removeHandler(old)
    handler = log_handler(fmt)
    handler.videoflix = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
