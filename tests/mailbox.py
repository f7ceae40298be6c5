"""A real SMTP server in-process (aiosmtpd), and helpers to read the mails it received."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import socket
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Collector:
    """aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


class Mailbox:
    """An SMTP server on a loopback port; start() and stop() it to play an outage."""

    def __init__(self) -> None:
        self.port = free_port()
        self.collector = Collector()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.collector, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[EmailMessage]:
        return self.collector.messages

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    async def wait_for(self, address: str, count: int = 1, timeout: float = 5.0) -> list[EmailMessage]:
        """The mails to an address, once at least `count` have arrived."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.to(address)) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"{count} mail(s) to {address} never arrived; got {len(self.to(address))}"
                )
            await asyncio.sleep(0.02)
        return self.to(address)


def text_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def link_in(message: EmailMessage) -> str:
    return re.search(r"https?://\S+", text_of(message)).group(0)


def code_in(message: EmailMessage) -> str:
    """The ?code= of the link in a mail, as the front-end would read it."""
    return parse_qs(urlsplit(link_in(message)).query)["code"][0]
