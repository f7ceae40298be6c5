"""Mail: rendered from templates/, written to the outbox, delivered by a background task.

A request only writes the mail to the outbox; the delivery loop sends it with retries and back-off, so
an SMTP outage never fails a request and no mail is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any, Protocol

import aiosmtplib
import tornado.template

from core.clock import Clock, utcnow
from core.config import EmailSettings
from models.db import Database
from models.outbox import Outbox

log = logging.getLogger("videoflix.mail")

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "mail"
SEND_LEASE_S = 120.0


class Renderer:
    """Renders a mail's subject, text and HTML parts from templates/mail/<name>.*."""

    def __init__(self, folder: Path = TEMPLATES) -> None:
        self.html = tornado.template.Loader(str(folder))
        self.text = tornado.template.Loader(str(folder), autoescape=None)

    def render(self, name: str, context: dict[str, Any]) -> dict[str, str]:
        """{subject, text, html} for the named mail."""
        subject = self.text.load(f"{name}.subject.txt").generate(**context).decode().strip()
        return {
            "subject": subject,
            "text": self.text.load(f"{name}.txt").generate(**context).decode(),
            "html": self.html.load(f"{name}.html").generate(subject=subject, **context).decode(),
        }


def build_message(mail: dict[str, Any], from_address: str) -> EmailMessage:
    """A multipart/alternative message: text first, HTML preferred by clients that show it."""
    message = EmailMessage()
    message["From"] = from_address
    message["To"] = mail["to"]
    message["Subject"] = mail["subject"]
    message["Message-ID"] = make_msgid(domain="videoflix")
    message.set_content(mail["text"])
    message.add_alternative(mail["html"], subtype="html")
    return message


class Backend(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class ConsoleBackend:
    """Prints the whole mail to the log: for development (it shows the codes)."""

    async def send(self, message: EmailMessage) -> None:
        log.info("mail (console backend):\n%s", message.as_string())


class SmtpBackend:
    """Sends with aiosmtplib, using the SMTP settings."""

    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings

    async def send(self, message: EmailMessage) -> None:
        s = self.settings
        await aiosmtplib.send(
            message,
            hostname=s.host,
            port=s.port,
            username=s.user or None,
            password=s.password or None,
            use_tls=s.use_ssl,
            start_tls=s.use_tls,
            timeout=s.timeout_s,
        )


def backend_for(settings: EmailSettings) -> Backend:
    """The backend the settings name."""
    return SmtpBackend(settings) if settings.backend == "smtp" else ConsoleBackend()


class Mailer:
    """Queues mail in the outbox and runs the loop that delivers it."""

    def __init__(
        self,
        db: Database,
        settings: EmailSettings,
        *,
        backend: Backend | None = None,
        clock: Clock = utcnow,
        renderer: Renderer | None = None,
    ) -> None:
        self.outbox = Outbox(db)
        self.settings = settings
        self.backend = backend or backend_for(settings)
        self.clock = clock
        self.renderer = renderer or Renderer()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False

    async def send(self, template: str, to: str, context: dict[str, Any]) -> None:
        """Render a mail and queue it; returns once it is safely in the outbox."""
        mail = {"to": to, "template": template, **self.renderer.render(template, context)}
        await self.outbox.enqueue(mail, self.clock())
        self.start()
        self._wake.set()

    def backoff(self, attempts: int) -> timedelta:
        """Delay before the next attempt: doubling from retry_base_s, capped at an hour."""
        return timedelta(seconds=min(3600.0, self.settings.retry_base_s * 2 ** (attempts - 1)))

    async def deliver_due(self) -> int:
        """Send every mail that is due now; returns how many were attempted."""
        attempted = 0
        while (mail := await self.outbox.claim_due(self.clock(), SEND_LEASE_S)) is not None:
            attempted += 1
            await self._attempt(mail)
        return attempted

    async def _attempt(self, mail: dict[str, Any]) -> None:
        try:
            await self.backend.send(build_message(mail, self.settings.from_address))
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as err:
            reason = f"{type(err).__name__}: {err}"
            if mail["attempts"] >= self.settings.max_attempts:
                await self.outbox.give_up(mail["_id"], self.clock(), reason)
                log.error(
                    "mail %s (%s) failed for good after %d attempts: %s",
                    mail["_id"],
                    mail["template"],
                    mail["attempts"],
                    reason,
                )
            else:
                when = self.clock() + self.backoff(mail["attempts"])
                await self.outbox.retry_later(mail["_id"], when, reason)
                log.warning(
                    "mail %s (%s) attempt %d failed, retrying at %s: %s",
                    mail["_id"],
                    mail["template"],
                    mail["attempts"],
                    when.isoformat(),
                    reason,
                )
        else:
            await self.outbox.mark_sent(mail["_id"], self.clock())
            log.info("mail %s (%s) sent", mail["_id"], mail["template"])

    async def run(self) -> None:
        """The delivery loop: wakes on new mail, and polls for retries that fall due."""
        while not self._stopping:
            try:
                await self.deliver_due()
            except Exception:  # the loop must outlive a database hiccup; the mail stays queued
                log.exception("outbox delivery failed; will try again")
            self._wake.clear()
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_interval_s):
                    await self._wake.wait()

    def start(self) -> None:
        """Start the delivery loop on the running event loop (idempotent)."""
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self.run(), name="outbox")

    async def stop(self) -> None:
        """Stop the delivery loop after the mail in hand; unsent mail waits in the outbox."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            async with asyncio.timeout(self.settings.timeout_s + 1):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
