"""Handlers that stream their request body to disk (uploads): a client that goes, or that stalls.

A client that closes its connection mid-body is a client abort, logged as one (status 499, as nginx
names it), never a crash: Tornado is told the body will not come, so the request ends at once instead
of waiting for a shutdown that would log it as a 500. An upload has no total body timeout (a large file
on a slow line takes as long as it takes, unlike the server's `body_timeout_s` for other bodies), but a
body that sends nothing for `server.idle_timeout_s` is cut off, as an idle connection is.
"""

from __future__ import annotations

import logging
from typing import Any

from tornado.http1connection import HTTP1Connection
from tornado.ioloop import IOLoop

from handlers.base import BaseHandler, loggable_path

log = logging.getLogger("videoflix.api")


class StreamedBodyHandler(BaseHandler):
    """Counts the body as it arrives, cuts off a stalled one, and logs a client that goes mid-body."""

    body_received = 0
    _last_arrival = 0.0
    _stall_timer: Any = None

    def watch_body(self) -> None:
        """Call once the body may come (end of `prepare`): no total timeout, an idle one instead."""
        set_body_timeout = getattr(self.request.connection, "set_body_timeout", None)
        if set_body_timeout is not None:
            set_body_timeout(None)  # the connection's total body timeout is for small bodies
        self._last_arrival = IOLoop.current().time()
        self._arm_stall_timer(self.config.server.idle_timeout_s)

    def allow_body(self, size: int) -> None:
        """Let this request's body be up to `size` bytes (the server's default limit is for JSON)."""
        connection = self.request.connection
        if isinstance(connection, HTTP1Connection):
            connection.set_max_body_size(size)

    def body_arrived(self, size: int) -> None:
        """Call from `data_received`: the body is moving."""
        self.body_received += size
        self._last_arrival = IOLoop.current().time()

    def body_complete(self) -> bool:
        """True once the whole body has arrived (the HTTP method runs after that)."""
        future = getattr(self.request, "_body_future", None)
        return future is None or future.done()

    def _arm_stall_timer(self, delay: float) -> None:
        self._stall_timer = IOLoop.current().call_later(delay, self._check_stall)

    def _stop_stall_timer(self) -> None:
        if self._stall_timer is not None:
            IOLoop.current().remove_timeout(self._stall_timer)
            self._stall_timer = None

    def _check_stall(self) -> None:
        """The timer runs once per idle period, not once per chunk: it re-arms for what is left."""
        self._stall_timer = None
        if self._finished or self.body_complete():
            return
        limit = self.config.server.idle_timeout_s
        idle = IOLoop.current().time() - self._last_arrival
        if idle < limit:
            self._arm_stall_timer(limit - idle)
            return
        log.info(
            "%s %s: no body byte for %gs, closing the connection",
            self.request.method,
            loggable_path(self.request.path),
            limit,
        )
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None:
            stream.close()  # Tornado then calls on_connection_close

    def on_connection_close(self) -> None:
        """Subclasses release what they hold first, then call this."""
        self._stop_stall_timer()
        super().on_connection_close()  # Tornado ends the request: the body will not come

    def on_finish(self) -> None:
        self._stop_stall_timer()
        super().on_finish()

    def log_client_abort(self) -> None:
        """One line saying how much of the body came, then the access line with status 499."""
        declared = self.request.headers.get("Content-Length")
        log.info(
            "%s %s: the client went away after %d%s body bytes",
            self.request.method,
            loggable_path(self.request.path),
            self.body_received,
            f" of {declared}" if declared else "",
        )
        super().log_client_abort()
