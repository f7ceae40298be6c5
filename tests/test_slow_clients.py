"""Slow clients on the real server (server.make_server on a loopback port): a connection that trickles
its headers or its body, or sits idle, is closed after the timeout, and everyone else is answered
meanwhile; an upload may take as long as it needs, but not pause longer than the idle timeout."""

from __future__ import annotations

import asyncio
import time

import pytest
import tornado.netutil
from tornado.httpclient import AsyncHTTPClient

import server
from tests.test_tus import OCTETS, TUS, metadata

TIMEOUT = 1.0
# Closed after the timeout, give or take the scheduling of 50 connections on a shared machine.
LATEST = TIMEOUT + 2.0


@pytest.fixture
def settings_overrides():
    return {"server": {"idle_timeout_s": TIMEOUT, "body_timeout_s": TIMEOUT}}


@pytest.fixture
def port(app, settings, io_loop):
    """The server as server.py makes it, listening on a free loopback port."""
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    http = server.make_server(app, settings.server)
    http.add_sockets(sockets)
    yield sockets[0].getsockname()[1]
    http.stop()
    io_loop.run_sync(http.close_all_connections)


async def held_for(port: int, opening: bytes, trickle: bytes, every_s: float = 0.2) -> float:
    """Send `opening`, then one byte of `trickle` every `every_s`; the seconds until the server closes."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def dribble() -> None:
        writer.write(opening)
        for byte in trickle:
            await asyncio.sleep(every_s)
            writer.write(bytes([byte]))
            await writer.drain()

    sender = asyncio.ensure_future(dribble())
    try:
        await asyncio.wait_for(reader.read(), LATEST + 5)  # b"" (or an answer, then EOF) once closed
    except ConnectionError:
        pass
    finally:
        sender.cancel()
        writer.close()
    return time.monotonic() - started


async def test_fifty_trickling_connections_are_closed_after_the_timeout_and_others_are_answered(port):
    login = b'{"email": "someone@example.com", "password": "password123"}'
    slow_headers = (b"", b"GET /api/health/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200)
    slow_body = (
        b"POST /api/accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(login),
        login,
    )
    silent = (b"", b"")
    clients = [slow_headers] * 20 + [slow_body] * 20 + [silent] * 10
    held = asyncio.gather(*(held_for(port, opening, trickle) for opening, trickle in clients))

    answered = []
    client = AsyncHTTPClient(force_instance=True)
    deadline = time.monotonic() + TIMEOUT + 0.5
    while time.monotonic() < deadline:  # while the 50 trickle, the server answers others at once
        started = time.monotonic()
        reply = await client.fetch(f"http://127.0.0.1:{port}/api/health/", request_timeout=5)
        answered.append((reply.code, time.monotonic() - started))
        await asyncio.sleep(0.1)
    client.close()

    durations = await held
    assert len(durations) == 50
    assert all(TIMEOUT * 0.8 <= seconds <= LATEST for seconds in durations), sorted(durations)
    assert answered and all(code == 200 and seconds < 1.0 for code, seconds in answered), answered


async def test_an_upload_may_outlast_the_body_timeout_but_not_pause_longer_than_the_idle_one(
    port, staff_token, settings
):
    client = AsyncHTTPClient(force_instance=True)
    created = await client.fetch(
        f"http://127.0.0.1:{port}/api/uploads/",
        method="POST",
        body=b"",
        headers={
            **TUS,
            "Authorization": f"Token {staff_token}",
            "Upload-Length": "1000",
            "Upload-Metadata": metadata(title="Slow"),
        },
        raise_error=False,
    )
    client.close()
    assert created.code == 201, created.body
    where = created.headers["Location"].split(str(port), 1)[1]
    head = (
        f"PATCH {where} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {staff_token}\r\n"
        f"Tus-Resumable: 1.0.0\r\nContent-Type: {OCTETS}\r\nUpload-Offset: 0\r\nContent-Length: 10\r\n\r\n"
    ).encode()

    # A byte every half timeout: slow, but moving, for three times the body timeout: it completes.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    for _ in range(10):
        await asyncio.sleep(TIMEOUT * 0.3)
        writer.write(b"x")
        await writer.drain()
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert answer.startswith(b"HTTP/1.1 204"), answer
    assert b"Upload-Offset: 10" in answer
    writer.close()

    # A body that stops: closed once it has sent nothing for the idle timeout.
    head = head.replace(b"Upload-Offset: 0", b"Upload-Offset: 10")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + b"y" * 4)
    await writer.drain()
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), LATEST + 5) == b""
    assert TIMEOUT * 0.8 <= time.monotonic() - started <= LATEST
    writer.close()


def test_the_timeouts_are_settings_with_defaults():
    from core.config import Settings

    defaults = Settings().server
    assert (defaults.idle_timeout_s, defaults.body_timeout_s) == (60.0, 60.0)
