"""Mail: rendered from templates/, queued as a `mail` job, delivered by the job queue.

A request only queues the mail; the queue sends it with retries and back-off, so an SMTP outage never
fails a request and no mail is lost. A sent mail drops its bodies (they carry codes); one that failed for
good keeps them until staff retry it (POST /api/admin/mail/<id>/retry/).
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any, Protocol

import aiosmtplib
import tornado.template

from core.config import EmailSettings
from services.jobs import JobContext, JobQueue, JobType, PermanentError, RetryableError

log = logging.getLogger("videoflix.mail")

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "mail"
MAIL = "mail"


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
    """Prints the mail to the log, decoded, so a link in it can be copied whole: for development."""

    async def send(self, message: EmailMessage) -> None:
        text = message.get_body(("plain",))
        body = text.get_content() if text is not None else ""
        log.info(
            "mail (console backend)\nFrom: %s\nTo: %s\nSubject: %s\n\n%s",
            message["From"],
            message["To"],
            message["Subject"],
            body.rstrip(),
            extra={"unredacted": True},  # the links are the point of this development backend
        )


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


class MailDelivery(JobType):
    """The `mail` job: send one rendered mail through the backend."""

    name = MAIL
    title = "Sending"
    scrub_when_done = ("text", "html")

    def __init__(self, settings: EmailSettings, backend: Backend) -> None:
        self.settings = settings
        self.backend = backend
        self.concurrency = settings.concurrency

    async def run(self, ctx: JobContext) -> None:
        mail = ctx.payload
        if "text" not in mail:
            raise PermanentError("The mail was sent and its text dropped: it cannot be sent again.")
        try:
            await self.backend.send(build_message(mail, self.settings.from_address))
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as err:
            raise RetryableError(f"{type(err).__name__}: {err}") from err
        log.info("mail %s (%s) sent", ctx.id, mail.get("template"))


class Mailer:
    """Renders mails and queues them for delivery."""

    def __init__(self, queue: JobQueue, renderer: Renderer | None = None) -> None:
        self.queue = queue
        self.renderer = renderer or Renderer()

    async def send(self, template: str, to: str, context: dict[str, Any]) -> None:
        """Render a mail and queue it; returns once it is safely stored."""
        mail = {"to": to, "template": template, **self.renderer.render(template, context)}
        await self.queue.enqueue(MAIL, mail)
