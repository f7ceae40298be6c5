"""Handlers that stream their request body to disk (uploads): what happens when the client goes.

A client that closes its connection mid-body is a client abort, logged as one (status 499, as nginx
names it), never a crash: Tornado is told the body will not come, so the request ends at once instead
of waiting for a shutdown that would log it as a 500.
"""

from __future__ import annotations

import logging

from handlers.base import BaseHandler, loggable_path

log = logging.getLogger("videoflix.api")

CLIENT_ABORT = 499


class StreamedBodyHandler(BaseHandler):
    """Counts the body as it arrives and logs a client that goes before the end of it."""

    body_received = 0

    def body_arrived(self, size: int) -> None:
        """Call from `data_received`: the body is moving."""
        self.body_received += size

    def body_complete(self) -> bool:
        """True once the whole body has arrived (the HTTP method runs after that)."""
        future = getattr(self.request, "_body_future", None)
        return future is None or future.done()

    def on_connection_close(self) -> None:
        """Subclasses release what they hold first, then call this."""
        aborted = not self._finished and not self.body_complete()
        super().on_connection_close()  # Tornado ends the request: the body will not come
        if aborted:
            self.log_client_abort()

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
        self.set_status(CLIENT_ABORT, "Client Closed Request")
        self.application.log_request(self)  # the access log line, and the request's metrics
