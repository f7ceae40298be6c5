"""A property-based fuzz of every route over raw HTTP: no answer is a 500, every error is the contract's JSON.

Routes come from handlers.app.HANDLER_MODULES, so a new route is fuzzed without touching this file; path
groups get real ids (a category, a ready video, a user) or hostile text. Requests are written byte by byte
on a socket, so invalid UTF-8 reaches the server in paths, queries, headers and bodies. Besides the
random requests: every path segment of every route with a NUL or invalid UTF-8 in it, every JSON body
nested past the interpreter's recursion limit, and bodies cut off before their Content-Length. Bounded
for CI (FUZZ_EXAMPLES per test, 150 by default; set it higher by hand).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.app import HANDLER_MODULES
from handlers.openapi import build_document
from handlers.route_templates import implemented, routes_of
from models.categories import Categories
from models.videos import new_video
from tests.conftest import make_token

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("FUZZ_RANDOM") is None,  # CI reproduces; FUZZ_RANDOM=1 explores
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ROUTES = routes_of(HANDLER_MODULES)
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

HOSTILE_TEXT = [
    "\ud800",  # unpaired surrogate
    "a\x00b",
    "%80",
    "%ff%fe",
    "%00",
    "1e309",
    "NaN",
    "-0.0",
    str(2**64),
    "-1",
    "..",
    "%2e%2e",
    "x" * 300,
    "{}",
]
# A NUL and invalid UTF-8, percent-encoded as a client would send them, for any path segment.
HOSTILE_SEGMENTS = [b"%00", b"a%00b", b"%ff", b"%c0%af", b"%ed%a0%80"]
NUMBERS = [1e308 * 10, float("nan"), -0.0, 2**64, -(2**63) - 1, 10**400, 1e-320, True, None, "12", [], {}]


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(NUMBERS),
        st.text(max_size=20),
        st.sampled_from(HOSTILE_TEXT),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=8,
    )


FIELD_NAMES = [
    "email",
    "password",
    "repeated_password",
    "new_password",
    "old_password",
    "token",
    "code",
    "uid",
    "position",
    "title",
    "description",
    "category",
    "category_id",
    "name",
    "slug",
    "is_staff",
    "is_active",
    "limit",
    "offset",
    "status",
    "q",
    "search",
]


def encode_json(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True, default=str).encode("utf-8", "surrogatepass")


class Nested:
    """A deeply nested JSON body, built when sent (a short repr keeps hypothesis' reports readable)."""

    def __init__(self, depth: int, opening: bytes, closing: bytes, inner: bytes = b"") -> None:
        self.depth, self.opening, self.closing, self.inner = depth, opening, closing, inner

    def __repr__(self) -> str:
        return f"Nested({self.depth}, {self.opening!r})"

    def render(self) -> bytes:
        return self.opening * self.depth + self.inner + self.closing * self.depth


def bodies() -> st.SearchStrategy[tuple[bytes | Nested, str | None]]:
    objects = st.dictionaries(st.sampled_from(FIELD_NAMES), json_values(), max_size=5).map(encode_json)
    past_the_recursion_limit = sys.getrecursionlimit() + 1
    deep = st.integers(min_value=100, max_value=100_000).map(lambda n: Nested(n, b"[", b"]"))
    deeper = st.integers(min_value=past_the_recursion_limit, max_value=100_000).map(
        lambda n: Nested(n, b"[", b"")  # never closed, as in the attack on login
    )
    deep_objects = st.integers(min_value=100, max_value=5_000).map(lambda n: Nested(n, b'{"a":', b"}", b"1"))
    raw = st.one_of(
        st.binary(max_size=64),
        st.sampled_from(
            [
                b"\xff\xfe",
                b'{"email": "\xff"}',
                b"\x00",
                b"null",
                b"[]",
                b"1e309",
                b'{"position": 1e309}',
                b'{"position": NaN}',
                b'{"position": ' + str(10**400).encode() + b"}",
                b'{"a":"\\ud800"}',
            ]
        ),
    )
    multipart = st.sampled_from(
        [
            b'--b\r\nContent-Disposition: form-data; name="title"\r\n\r\nx\r\n--b--\r\n',
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n\x00\x00',
            b"--b\r\n\r\n",
            b"garbage",
        ]
    ).map(lambda body: body)
    types = st.sampled_from(
        [
            None,
            "application/json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "multipart/form-data; boundary=b",
            "application/json; charset=latin-1",
            "\xff/\xfe",
            "image/gif",
        ]
    )
    return st.tuples(st.one_of(objects, deep, deeper, deep_objects, raw, multipart), types)


def queries() -> st.SearchStrategy[bytes]:
    names = st.sampled_from(["limit", "offset", "status", "category", "q", "search", "z", "\xff", "page"])
    values = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=10), st.sampled_from(["1", "0", "20"]))
    pair = st.tuples(names, values).map(
        lambda kv: (
            kv[0].encode("latin-1")
            + b"="
            + kv[1]
            .encode("utf-8", "surrogatepass")
            .replace(b"&", b"%26")
            .replace(b" ", b"%20")
            .replace(b"#", b"%23")
        )
    )
    return st.lists(pair, max_size=4).map(lambda pairs: b"&".join(pairs))


class Seed:
    def __init__(self, staff: str, user: str, category: str, video: str, user_id: str) -> None:
        self.staff, self.user, self.category, self.video, self.user_id = staff, user, category, video, user_id


@pytest.fixture
def seed(services, db, io_loop) -> Seed:
    async def make() -> Seed:
        staff = await make_token(services, "fuzz-staff@example.com", staff=True)
        user = await make_token(services, "fuzz-user@example.com")
        found = await services.accounts.users.by_email("fuzz-user@example.com")
        category = await Categories(db).create("Fuzz", "fuzz", "", services.clock())
        video_id = ObjectId()
        doc = new_video(
            video_id, "Fuzzed", "", category["_id"], f"videos/{video_id}/source", None, services.clock()
        )
        doc.update(status="ready", duration=10.0, width=640, height=360)
        await db.videos.insert_one(doc)
        services.catalogue.videos.invalidate()
        return Seed(staff, user, str(category["_id"]), str(video_id), str(found.id))

    return io_loop.run_sync(make)


async def raw_request(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes, read the whole answer (Connection: close): status, headers, body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(-1), 10)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return status, headers, body


def dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return out


def assert_contract(method: str, target: bytes, status: int, headers: dict[str, str], body: bytes) -> None:
    where = f"{method} {target!r} → {status} {body[:200]!r}"
    assert status < 500 or status in (503, 507), where
    if status >= 400 and method != "HEAD":
        assert headers.get("content-type", "").startswith("application/json"), where
        data = json.loads(body)
        assert isinstance(data, dict) and data, where
        if "detail" in data:
            assert isinstance(data["detail"], str), where
        else:
            for name, messages in data.items():
                assert isinstance(name, str) and isinstance(messages, list), where
                assert all(isinstance(message, str) for message in messages), where


def with_hostile_segment(path: bytes, index: int | None, hostile: bytes) -> bytes:
    """The path with its segment number `index` (of the non-empty ones) replaced by hostile bytes."""
    if index is None:
        return path
    parts = path.split(b"/")
    filled = [i for i, part in enumerate(parts) if part] or [1]
    parts[filled[index % len(filled)]] = hostile
    return b"/".join(parts)


def path_for(route, seed: Seed, hostile: str | None) -> bytes:
    """The route's template with ids of the seeded documents (or hostile text) in its groups."""
    path = route.template.encode()
    for name, _regex in route.parameters:
        if hostile is not None:
            value = hostile.encode("utf-8", "surrogatepass")
        elif "category" in name:
            value = seed.category.encode()
        elif "user" in name:
            value = seed.user_id.encode()
        elif "video" in name or name == "id":
            value = seed.video.encode()
        elif "height" in name or "resolution" in name:
            value = b"480"
        else:
            value = b"index.m3u8"
        path = path.replace(b"{" + name.encode() + b"}", value, 1)
    return path


def quote_controls(target: bytes) -> bytes:
    """Percent-encode what no request line may carry raw (controls, space, '#'); other bytes go as is."""
    return b"".join(
        b"%%%02X" % byte if byte < 0x21 or byte in (0x23, 0x7F) else bytes([byte]) for byte in target
    )


def build_request(method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if method not in ("GET", "HEAD") or body:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@given(
    route=st.sampled_from(ROUTES),
    method=st.sampled_from(METHODS),
    who=st.sampled_from(["staff", "user", "nobody", "junk"]),
    hostile_path=st.one_of(st.none(), st.sampled_from([*HOSTILE_TEXT, "\xff", "%c0%af"])),
    hostile_segment=st.one_of(
        st.none(), st.tuples(st.integers(min_value=0, max_value=8), st.sampled_from(HOSTILE_SEGMENTS))
    ),
    query=queries(),
    body=bodies(),
    extra_header=st.sampled_from(
        [
            None,
            (b"X-Request-ID", b"\xff\xfe" * 100),
            (b"Origin", b"http://\xff"),
            (b"Range", b"bytes=99999999999999999999-"),
            (b"If-None-Match", b"\xff"),
        ]
    ),
)
@FUZZ
def test_no_route_answers_500_to_hostile_requests(
    seed,
    http_server,
    http_server_port,
    io_loop,
    route,
    method,
    who,
    hostile_path,
    hostile_segment,
    query,
    body,
    extra_header,
):
    payload, content_type = body
    if isinstance(payload, Nested):
        payload = payload.render()
    path = with_hostile_segment(path_for(route, seed, hostile_path), *(hostile_segment or (None, b"")))
    target = path + (b"?" + query if query else b"")
    target = quote_controls(target)
    headers: list[tuple[bytes, bytes]] = []
    token = {"staff": seed.staff, "user": seed.user, "junk": "\xff" * 3, "nobody": None}[who]
    if token:
        headers.append((b"Authorization", b"Token " + token.encode("latin-1")))
    if content_type is not None:
        headers.append((b"Content-Type", content_type.encode("latin-1")))
    if extra_header:
        headers.append(extra_header)
    request = build_request(method, target, headers, payload)
    status, answer_headers, answer = io_loop.run_sync(lambda: raw_request(http_server_port[1], request))
    assert_contract(method, target, status, answer_headers, answer)


@given(
    position=st.one_of(st.sampled_from(NUMBERS), json_values()),
)
@FUZZ
def test_saving_any_position_answers_200_or_a_400_naming_the_field(
    seed, http_server, http_server_port, io_loop, position
):
    body = encode_json({"position": position})
    headers = [(b"Authorization", b"Token " + seed.user.encode()), (b"Content-Type", b"application/json")]
    target = f"/api/videos/{seed.video}/progress/".encode()
    status, answer_headers, answer = io_loop.run_sync(
        lambda: raw_request(http_server_port[1], build_request("PUT", target, headers, body))
    )
    assert status in (200, 400), (position, status, answer)
    assert_contract("PUT", target, status, answer_headers, answer)


def test_the_server_still_answers_health_after_the_fuzz(seed, http_server, http_server_port, io_loop):
    garbage = [
        b"\xff\xfe\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"POST /api/videos/ HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999\r\n"
        b"Connection: close\r\n\r\n",
    ]

    async def run() -> int:
        for request in garbage:
            reader, writer = await asyncio.open_connection("127.0.0.1", http_server_port[1])
            writer.write(request)
            await writer.drain()
            await asyncio.wait_for(reader.read(-1), 10)
            writer.close()
        status, _, _body = await raw_request(
            http_server_port[1], b"GET /api/health/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        return status

    assert io_loop.run_sync(run) == 200


def test_a_query_parameter_that_is_not_utf8_answers_a_page_not_a_500(
    seed, http_server, http_server_port, io_loop
):
    target = b"/api/videos/?offset=1&limit=1&z=%80"
    request = build_request("GET", target, [(b"Authorization", b"Token " + seed.user.encode())], b"")
    status, headers, body = io_loop.run_sync(lambda: raw_request(http_server_port[1], request))
    assert status in (200, 400), body
    assert_contract("GET", target, status, headers, body)
    assert re.match(rb"^[\x20-\x7e]*$", body)


def token_for(seed: Seed, operation: dict[str, Any]) -> str | None:
    """The token an operation's access level asks for (none for public ones)."""
    return {"staff": seed.staff, "user": seed.user}.get(operation.get("x-access", ""))


def test_a_nul_or_invalid_utf8_in_any_path_segment_of_any_route_answers_400_or_404(
    seed, http_server, http_server_port, io_loop
):
    document = build_document(HANDLER_MODULES, version="0")["paths"]
    requests = []
    for route in ROUTES:
        path = path_for(route, seed, None)
        for name in implemented(route.handler):
            if name == "options":
                continue  # a CORS preflight answers 204 on any path, the catch-all's too
            token = token_for(seed, document[route.template][name])
            headers = [(b"Authorization", b"Token " + token.encode())] if token else []
            segments = len([part for part in path.split(b"/") if part]) or 1
            for index in range(segments):
                for hostile in HOSTILE_SEGMENTS:
                    target = with_hostile_segment(path, index, hostile)
                    requests.append((name.upper(), target, build_request(name.upper(), target, headers, b"")))

    async def run() -> list[tuple[str, bytes, int, dict[str, str], bytes]]:
        answers = []
        for method, target, request in requests:
            answers.append((method, target, *await raw_request(http_server_port[1], request)))
        return answers

    for method, target, status, headers, body in io_loop.run_sync(run, timeout=120):
        # a hostile segment where the route has a literal one is no route (404), a 405 or 401 is fine
        assert status in (400, 401, 403, 404, 405), (method, target, status)
        assert_contract(method, target, status, headers, body)


def test_every_json_body_nested_past_the_recursion_limit_answers_400_or_429(
    seed, http_server, http_server_port, io_loop
):
    document = build_document(HANDLER_MODULES, version="0")["paths"]
    deep = b"[" * (sys.getrecursionlimit() * 100)
    sent = 0
    for route in ROUTES:
        for name, operation in document[route.template].items():
            if "application/json" not in operation.get("requestBody", {}).get("content", {}):
                continue
            token = token_for(seed, operation)
            headers = [(b"Content-Type", b"application/json")]
            headers += [(b"Authorization", b"Token " + token.encode())] if token else []
            target = path_for(route, seed, None)
            request = build_request(name.upper(), target, headers, deep)
            status, answer_headers, body = io_loop.run_sync(
                lambda r=request: raw_request(http_server_port[1], r)
            )
            assert status in (400, 429), (name, target, status, body)
            assert_contract(name.upper(), target, status, answer_headers, body)
            if status == 400:
                assert json.loads(body)["detail"].startswith("JSON parse error"), body
            sent += 1
    assert sent >= 10  # every JSON body of the API: accounts, categories, videos, admin


@contextmanager
def server_log() -> Any:
    """Everything the server logs meanwhile (it runs in this process), as text."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


async def send_cut_off(port: int, request: bytes) -> bytes:
    """Send a request whose body stops short of its Content-Length, then stop sending; the server must
    close the connection (whatever it answered first) within a few seconds."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        writer.write_eof()
        return await asyncio.wait_for(reader.read(-1), 5)
    except ConnectionResetError:
        return b""  # closed while bytes were unread on its side: a reset is a close too
    finally:
        writer.close()


BODY_ROUTES = [
    (route, name.upper())
    for route in ROUTES
    for name in implemented(route.handler)
    if name in ("post", "put", "patch")
]


@given(
    target=st.sampled_from(BODY_ROUTES),
    who=st.sampled_from(["staff", "user", "nobody"]),
    content_type=st.sampled_from(
        [b"application/json", b"multipart/form-data; boundary=b", b"application/offset+octet-stream"]
    ),
    promised=st.integers(min_value=1, max_value=1 << 20),
    fraction=st.floats(min_value=0, max_value=0.99),
)
@settings(FUZZ, max_examples=max(EXAMPLES // 3, 20))
def test_a_body_cut_off_mid_way_is_closed_and_never_logged_as_a_500(
    seed, http_server, http_server_port, io_loop, target, who, content_type, promised, fraction
):
    route, method = target
    path = path_for(route, seed, None)
    sent = b'{"email": "' + b"x" * promised
    sent = sent[: int(promised * fraction)]
    headers = [(b"Content-Type", content_type), (b"Tus-Resumable", b"1.0.0"), (b"Upload-Offset", b"0")]
    token = {"staff": seed.staff, "user": seed.user, "nobody": None}[who]
    if token:
        headers.append((b"Authorization", b"Token " + token.encode()))
    head = build_request(method, path, headers, b"").replace(
        b"Content-Length: 0", b"Content-Length: " + str(promised).encode()
    )
    with server_log() as log:
        answer = io_loop.run_sync(lambda: send_cut_off(http_server_port[1], head + sent), timeout=10)
        io_loop.run_sync(lambda: asyncio.sleep(0.05))  # the server's own close callbacks run
    if answer:  # refused before the body (401, 403, 413, 415): an answer, then the close
        status = int(answer.split(b" ", 2)[1])
        assert status < 500, (method, path, answer[:300])
    text = log.getvalue()
    assert "ERROR" not in text and " 500 " not in text, text


def test_an_upload_cut_off_mid_way_is_logged_as_a_client_abort_and_counted_out(
    seed, http_server, http_server_port, io_loop, services, settings
):
    staff = [
        (b"Content-Type", b"multipart/form-data; boundary=b"),
        (b"Authorization", b"Token " + seed.staff.encode()),
    ]
    head = build_request("POST", b"/api/videos/", staff, b"").replace(
        b"Content-Length: 0", b"Content-Length: 500000"
    )
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n' + b"\0" * 1000
    with server_log() as log:
        answer = io_loop.run_sync(lambda: send_cut_off(http_server_port[1], head + part), timeout=10)
        io_loop.run_sync(lambda: asyncio.sleep(0.05))
    assert answer == b""  # closed, with nothing to say
    assert log.getvalue().splitlines() == [
        line for line in log.getvalue().splitlines() if line.startswith("INFO")
    ]
    assert "POST /api/videos/ 499" in log.getvalue()
    assert services.metrics.in_flight._value.get() == 0  # the in-flight gauge is not left at 1
    uploads = list(Path(settings.media.root).rglob("*"))
    assert not [p for p in uploads if p.is_file()], uploads
