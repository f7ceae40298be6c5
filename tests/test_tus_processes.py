"""tus across processes: two `python server.py --role api` on one database (tests/mongo_wire.py, or
TEST_MONGODB_URI) and one bucket (moto) or one shared MEDIA_ROOT, as behind a load balancer without
sticky routing. Half of a file goes to one process, the rest to the other; the video is made whole."""

from __future__ import annotations

import hashlib
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pymongo import MongoClient

from core.storage import files_below
from tests.conftest import database_uri
from tests.test_roles import login
from tests.test_server import Running, environment
from tests.test_storage_s3 import ACCESS, SECRET, bucket, moto  # noqa: F401 (fixtures)
from tests.test_tus import MIB, OCTETS, metadata
from tests.test_uploads import padded_mp4

pytestmark = pytest.mark.slow


def config(path: Path, media_root: Path, s3: str = "") -> Path:
    path.write_text(
        f"""
server: {{secret_key: tus-processes-secret-key-long-enough}}
media: {{root: {media_root}{", storage: s3, edge: s3" if s3 else ""}}}
accounts: {{bcrypt_rounds: 4}}
admin: {{email: root@example.com, password: a-long-password}}
{s3}
"""
    )
    return path


def s3_section(name: str, url: str) -> str:
    return (
        f"s3: {{bucket: {name}, endpoint_url: '{url}', access_key_id: {ACCESS}, "
        f"secret_access_key: {SECRET}, part_size_mb: 5}}"
    )


def call(method: str, url: str, token: str, data: bytes = b"", **headers: str) -> tuple[int, dict]:
    headers = {"Tus-Resumable": "1.0.0", "Authorization": f"Token {token}", **headers}
    request = urllib.request.Request(url, method=method, data=data or None, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers)
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers)


def create(url: str, token: str, length: int) -> str:
    code, headers = call(
        "POST",
        f"{url}/api/uploads/",
        token,
        **{"Upload-Length": str(length), "Upload-Metadata": metadata(title="Two processes")},
    )
    assert code == 201
    return urlsplit(headers["Location"]).path


def patch(url: str, token: str, where: str, offset: int, data: bytes) -> tuple[int, dict]:
    return call("PATCH", url + where, token, data, **{"Content-Type": OCTETS, "Upload-Offset": str(offset)})


def cut_off_patch(url: str, token: str, where: str, data: bytes, sent: int) -> None:
    """A PATCH that declares all of `data`, sends `sent` bytes of it, and loses its connection."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(
            (
                f"PATCH {where} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Token {token}\r\n"
                f"Tus-Resumable: 1.0.0\r\nContent-Type: {OCTETS}\r\nUpload-Offset: 0\r\n"
                f"Content-Length: {len(data)}\r\n\r\n"
            ).encode()
            + data[:sent]
        )


def offset_at(url: str, token: str, where: str) -> int:
    code, headers = call("HEAD", url + where, token)
    assert code == 200
    return int(headers["Upload-Offset"])


@pytest.fixture
def video(clips, tmp_path) -> bytes:
    """A real video of about 12 MiB: two whole 5 MiB parts and a tail with S3."""
    target = tmp_path / "padded.mp4"
    padding = padded_mp4(clips["small"], target, 12 * MIB)
    return target.read_bytes() + b"\0" * padding


class Two:
    """Two API processes on one database; `roots` are their media roots (shared or not)."""

    def __init__(self, tmp_path: Path, mongodb_uri: str, roots: tuple[Path, Path], s3: str = "") -> None:
        uri = database_uri(mongodb_uri, "tus")
        self.database = MongoClient(uri, tz_aware=True).get_default_database()
        env = environment(MONGODB_URI=uri)
        self.processes = [
            Running(
                "--port",
                "0",
                "--role",
                "api",
                "--config",
                str(config(tmp_path / f"config{n}.yaml", root, s3)),
                env=env,
            )
            for n, root in enumerate(roots)
        ]
        self.urls = [p.wait_for(r"listening on (http://\S+)").group(1) for p in self.processes]
        self.token = login(self.urls[0])

    def stop(self) -> None:
        for process in self.processes:
            assert process.stop() == 0
        self.database.client.drop_database(self.database.name)
        self.database.client.close()

    def video_source(self, video_id: str) -> str:
        doc = self.database.videos.find_one({"title": "Two processes"})
        assert doc is not None and str(doc["_id"]) == video_id and doc["status"] == "pending"
        return doc["source"]


@pytest.fixture
def scratch(tmp_path) -> tuple[Path, Path]:
    return tmp_path / "scratch-a", tmp_path / "scratch-b"


def finish_on_second(two: Two, where: str, data: bytes, offset: int) -> str:
    code, headers = patch(two.urls[1], two.token, where, offset, data[offset:])
    assert code == 204, headers
    return headers["Video-Id"]


@pytest.mark.parametrize("cut_off", [False, True], ids=["whole-patch", "cut-off-patch"])
def test_two_api_processes_on_one_bucket_each_take_half_of_an_upload(
    tmp_path, mongodb_uri, bucket, moto, scratch, video, cut_off
):
    name, client = bucket
    two = Two(tmp_path, mongodb_uri, scratch, s3_section(name, moto.url))
    try:
        where = create(two.urls[0], two.token, len(video))
        half = len(video) // 2 + 12345  # a whole part and a tail
        if cut_off:
            cut_off_patch(two.urls[0], two.token, where, video, half)
            deadline = time.monotonic() + 20
            while offset_at(two.urls[1], two.token, where) != half and time.monotonic() < deadline:
                time.sleep(0.1)
        else:
            code, _ = patch(two.urls[0], two.token, where, 0, video[:half])
            assert code == 204
        assert offset_at(two.urls[1], two.token, where) == half  # the other process knows
        for root in scratch:  # a partial upload is in the bucket, not on a disk
            assert not root.exists() or files_below(root) == []
        video_id = finish_on_second(two, where, video, half)
        key = two.video_source(video_id)
        stored = client.get_object(Bucket=name, Key=key)["Body"].read()
        assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(video).hexdigest()
        assert client.list_objects_v2(Bucket=name, Prefix="uploads/").get("KeyCount") == 0
        for root in scratch:
            assert not root.exists() or files_below(root) == []
    finally:
        two.stop()


def test_two_api_processes_on_one_shared_media_root_each_take_half_of_an_upload(tmp_path, mongodb_uri, video):
    root = tmp_path / "shared-media"
    two = Two(tmp_path, mongodb_uri, (root, root))
    try:
        where = create(two.urls[0], two.token, len(video))
        half = len(video) // 2
        assert patch(two.urls[0], two.token, where, 0, video[:half])[0] == 204
        assert offset_at(two.urls[1], two.token, where) == half
        assert patch(two.urls[1], two.token, where, 0, b"late")[0] == 409  # the offset is shared too
        video_id = finish_on_second(two, where, video, half)
        source = root / two.video_source(video_id)
        assert hashlib.sha256(source.read_bytes()).hexdigest() == hashlib.sha256(video).hexdigest()
        assert list((root / "uploads").glob("*.part")) == []
    finally:
        two.stop()
