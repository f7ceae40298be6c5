"""core/storage (the S3 and local backends) against moto's S3 on loopback: aiobotocore over real HTTP."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import time
import tracemalloc
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import botocore.auth
import pytest
from moto.server import ThreadedMotoServer

from core.config import load_settings
from core.edge import S3Edge, window
from core.storage import LocalStorage, S3Storage, StorageUnavailable, fresh_prefix
from core.storage.base import MiB
from services.media import build_storage
from tests.media import make_clip
from tests.nginx import free_port
from transcode.ffmpeg import ffmpeg_binary

ACCESS, SECRET = "test-access-key", "test-secret-access-key-never-shown"
PART = 5 * MiB


class Moto:
    """moto's S3 on 127.0.0.1: it can be stopped and started again on the same port (state stays)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.running = False

    def start(self) -> None:
        self.server.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.server.stop()
            self.running = False


@pytest.fixture(scope="module")
def moto():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = Moto()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def store(moto, io_loop):
    if not moto.running:
        moto.start()
    storage = S3Storage(
        f"videoflix-{uuid.uuid4().hex[:12]}",
        endpoint_url=moto.url,
        access_key_id=ACCESS,
        secret_access_key=SECRET,
        part_size=PART,
        concurrency=4,
        attempts=2,
        retry_base_s=0.05,
        connect_timeout_s=1,
        read_timeout_s=10,
    )

    async def start() -> None:
        await storage.start()
        await storage.client.create_bucket(Bucket=storage.bucket)

    io_loop.run_sync(start)
    yield storage
    io_loop.run_sync(storage.close)


async def open_uploads(store: S3Storage) -> list[str]:
    answer = await store.client.list_multipart_uploads(Bucket=store.bucket)
    return [upload["Key"] for upload in answer.get("Uploads", [])]


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


async def test_a_streamed_upload_of_many_chunks_keeps_memory_bounded_and_stores_the_input(store):
    total = 24 * MiB
    pattern = os.urandom(64 * 1024)
    peak = 0

    async def chunks():
        nonlocal peak
        for index in range(total // len(pattern)):
            if index % 32 == 0:  # every 2 MiB: what put_stream holds now
                snapshot = tracemalloc.take_snapshot().filter_traces(
                    [tracemalloc.Filter(True, "*core/storage/s3.py")]
                )
                peak = max(peak, sum(stat.size for stat in snapshot.statistics("filename")))
            yield pattern

    tracemalloc.start(1)  # what the S3 backend itself allocates: its part buffer
    try:
        size = await store.put_stream("videos/a/source", chunks())
    finally:
        tracemalloc.stop()
    assert size == total
    assert 1 * MiB < peak < 3 * PART, f"put_stream held {peak / MiB:.1f} MiB"
    answer = await store.client.get_object(Bucket=store.bucket, Key="videos/a/source")
    async with answer["Body"] as body:
        stored = await body.read()
    assert stored == pattern * (total // len(pattern))
    assert await open_uploads(store) == []


async def test_a_small_upload_is_one_object(store):
    async def chunks():
        yield b"hello "
        yield b"world"

    assert await store.put_stream("videos/b/source", chunks()) == 11
    target = Path(os.environ.get("TMPDIR", "/tmp")) / f"dl-{uuid.uuid4().hex}"
    try:
        await store.download("videos/b/source", target)
        assert target.read_bytes() == b"hello world"
    finally:
        target.unlink(missing_ok=True)


async def test_a_chunk_source_failing_mid_upload_leaves_no_object_and_no_open_upload(store):
    async def chunks():
        for _ in range(3):
            yield os.urandom(PART)
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        await store.put_stream("videos/c/source", chunks())
    assert not await store.exists("videos/c/source")
    assert await open_uploads(store) == []


async def test_a_cancelled_upload_is_aborted(store):
    started = asyncio.Event()

    async def chunks():
        for _ in range(2):
            yield os.urandom(PART)
        started.set()
        await asyncio.sleep(60)
        yield b"never"

    task = asyncio.ensure_future(store.put_stream("videos/d/source", chunks()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await store.exists("videos/d/source")
    assert await open_uploads(store) == []


async def test_the_store_going_down_mid_upload_raises_a_readable_error_and_leaves_no_object(
    store, moto, caplog
):
    async def chunks():
        yield os.urandom(PART)
        yield os.urandom(PART)  # the first part is sent before this is asked for
        await asyncio.to_thread(moto.stop)
        yield os.urandom(PART)

    with pytest.raises(StorageUnavailable) as caught:
        await store.put_stream("videos/e/source", chunks())
    detail = caught.value.detail
    assert "failed to" in detail and store.bucket not in detail and str(moto.port) not in detail
    assert SECRET not in detail and ACCESS not in detail
    assert f"bucket '{store.bucket}' at 127.0.0.1:{moto.port}" in caplog.text.replace("http://", "")
    moto.start()
    assert not await store.exists("videos/e/source")
    # The abort could not reach a store that was down; once it is back, the sweep clears the upload.
    await store.abort_uploads("videos/e")
    assert await open_uploads(store) == []


async def test_a_store_that_does_not_answer_gives_one_clear_sentence_and_the_log_names_the_store(
    moto, tmp_path, caplog
):
    storage = S3Storage(
        "nowhere",
        endpoint_url=f"http://user:{SECRET}@127.0.0.1:{free_port()}",
        access_key_id=ACCESS,
        secret_access_key=SECRET,
        connect_timeout_s=0.5,
        attempts=1,
    )
    await storage.start()
    try:
        (tmp_path / "360p").mkdir()
        (tmp_path / "360p" / "seg_00000.ts").write_bytes(b"ts")
        calls = (
            storage.check,
            lambda: storage.list_keys("videos/x"),
            lambda: storage.exists("videos/x/a"),
            lambda: storage.upload_folder(tmp_path, "videos/x/hls-1"),
        )
        for call in calls:
            with pytest.raises(StorageUnavailable) as caught:
                await call()
            detail = caught.value.detail
            assert detail.startswith("The media store failed to ")
            assert detail.endswith("(cannot connect to it).")
            assert "nowhere" not in detail and "127.0.0.1" not in detail  # no answer names the store
            assert SECRET not in detail and ACCESS not in detail and "user" not in detail
        assert "the media store (bucket 'nowhere' at http://127.0.0.1:" in caplog.text  # the log does
        assert SECRET not in caplog.text and "user:" not in caplog.text
    finally:
        await storage.close()


async def test_a_ladder_uploads_then_every_file_is_served_by_its_presigned_url(store, tmp_path):
    folder = tmp_path / "ladder"
    files = {"master.m3u8": b"#EXTM3U\n", "360p/index.m3u8": b"#EXTM3U\n", "thumbnail.jpg": b"jpg"}
    files |= {f"360p/seg_{i:05d}.ts": os.urandom(1000 + i) for i in range(20)}
    for name, body in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(body)
    prefix = fresh_prefix("videos/65a000000000000000000001")
    keys = await store.upload_folder(folder, prefix)
    assert sorted(keys) == sorted(prefix + name for name in files)
    for name, body in files.items():
        status, served = await asyncio.to_thread(fetch, store.presign(prefix + name, 600))
        assert (status, served) == (200, body)


async def test_presigned_urls_are_the_same_within_a_window_and_signed_as_botocore_signs_them(
    store, monkeypatch
):
    key = "videos/65a000000000000000000001/hls-x/360p/seg_00000.ts"

    async def chunks():
        yield b"segment"

    await store.put_stream(key, chunks())
    edge = S3Edge(store, "edge-secret", 600)
    start, _ = window(time.time(), 600)
    first = edge.url("videos/65a000000000000000000001/hls-x", "360p/seg_00000.ts", now=start + 1)
    later = edge.url("videos/65a000000000000000000001/hls-x", "360p/seg_00000.ts", now=start + 599)
    assert first == later
    assert "X-Amz-Expires=1200" in first
    assert datetime.fromtimestamp(start, UTC).strftime("X-Amz-Date=%Y%m%dT%H%M%SZ") in first
    assert await asyncio.to_thread(fetch, first) == (200, b"segment")
    # moto does not check presigned signatures: botocore's own presigner, its clock at the window
    # start, must produce the very same URL (AWS S3 and MinIO check it).
    monkeypatch.setattr(
        botocore.auth,
        "get_current_datetime",
        lambda *a, **k: datetime.fromtimestamp(start, UTC).replace(tzinfo=None),
    )
    theirs = await store.client.generate_presigned_url(
        "get_object", Params={"Bucket": store.bucket, "Key": key}, ExpiresIn=1200
    )
    assert theirs == first


@pytest.mark.slow
async def test_ffmpeg_plays_a_ladder_through_presigned_urls_in_a_rewritten_playlist(store, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", "160x90", 2.0)
    ladder = tmp_path / "ladder"
    (ladder / "90p").mkdir(parents=True)
    subprocess.run(
        [
            ffmpeg_binary(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-i",
            str(clip),
            "-c",
            "copy",
            "-f",
            "hls",
            "-hls_time",
            "1",
            "-hls_list_size",
            "0",
            "-hls_segment_filename",
            str(ladder / "90p" / "seg_%05d.ts"),
            str(ladder / "90p" / "index.m3u8"),
        ],
        check=True,
        timeout=60,
    )
    (ladder / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=160x90\n90p/index.m3u8\n"
    )
    folder = fresh_prefix("videos/65a000000000000000000001").rstrip("/")
    await store.upload_folder(ladder, folder)
    edge = S3Edge(store, "edge-secret", 600)
    master = edge.master((ladder / "master.m3u8").read_text(), folder)
    assert "/api/edge/" in master  # variant playlists come from the API, rewritten
    _, expires = window(time.time(), 600)
    variant = edge.variant((ladder / "90p" / "index.m3u8").read_text(), folder, "90p/index.m3u8", expires)
    segments = [line for line in variant.splitlines() if line and not line.startswith("#")]
    assert segments and all(
        line.startswith(store.endpoint_url) and "X-Amz-Signature=" in line for line in segments
    )
    playlist = tmp_path / "signed.m3u8"
    playlist.write_text(variant)
    decoded = subprocess.run(
        [
            ffmpeg_binary(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-protocol_whitelist",
            "file,http,tcp",
            "-allowed_extensions",
            "ALL",
            "-i",
            str(playlist),
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert decoded.returncode == 0, decoded.stderr


async def test_deleting_a_prefix_removes_every_object_below_it_and_nothing_else(store, tmp_path):
    folder = tmp_path / "ladder"
    for i in range(30):
        (folder / "360p").mkdir(parents=True, exist_ok=True)
        (folder / "360p" / f"seg_{i:05d}.ts").write_bytes(b"x" * 10)
    await store.upload_folder(folder, "videos/65a000000000000000000001/hls-old")
    await store.upload_folder(folder, "videos/65a000000000000000000002/hls-keep")
    assert await store.delete_prefix("videos/65a000000000000000000001") == 30
    assert await store.list_keys("videos/65a000000000000000000001") == []
    assert len(await store.list_keys("videos/65a000000000000000000002")) == 30


async def test_one_file_and_one_small_object_are_stored_whole_replacing_what_was_there(store, tmp_path):
    for storage in (store, LocalStorage(tmp_path / "media")):
        segment = tmp_path / "seg_00000.ts"
        segment.write_bytes(b"\x47" * 376)
        await storage.put_file(segment, "videos/a/hls-1/360p/seg_00000.ts")
        assert await storage.read_bytes("videos/a/hls-1/360p/seg_00000.ts") == b"\x47" * 376
        await storage.put_bytes("videos/a/hls-1/360p/index.m3u8", b"#EXTM3U\n")
        await storage.put_bytes("videos/a/hls-1/360p/index.m3u8", b"#EXTM3U\n#EXT-X-ENDLIST\n")
        assert await storage.read_bytes("videos/a/hls-1/360p/index.m3u8") == b"#EXTM3U\n#EXT-X-ENDLIST\n"
        assert sorted(await storage.list_keys("videos/a/")) == [
            "videos/a/hls-1/360p/index.m3u8",
            "videos/a/hls-1/360p/seg_00000.ts",
        ]


async def test_a_small_object_into_a_store_that_is_down_raises_the_domain_error(store, moto):
    moto.stop()
    try:
        with pytest.raises(StorageUnavailable):
            await store.put_bytes("videos/a/hls-1/master.m3u8", b"#EXTM3U\n")
    finally:
        moto.start()


async def test_local_storage_streams_uploads_folders_and_deletes_as_media_root_does(tmp_path):
    storage = LocalStorage(tmp_path / "media")

    async def chunks():
        yield b"a" * 10
        raise ConnectionResetError("gone")

    with pytest.raises(ConnectionResetError):
        await storage.put_stream("videos/a/source", chunks())
    assert list((tmp_path / "media" / "videos" / "a").iterdir()) == []

    async def good():
        yield b"abc"

    assert await storage.put_stream("videos/a/source", good()) == 3
    assert (tmp_path / "media" / "videos" / "a" / "source").read_bytes() == b"abc"
    ladder = tmp_path / "out"
    (ladder / "360p").mkdir(parents=True)
    (ladder / "360p" / "seg_00000.ts").write_bytes(b"ts")
    keys = await storage.upload_folder(ladder, "videos/a/hls-1")
    assert keys == ["videos/a/hls-1/360p/seg_00000.ts"]
    assert await storage.exists("videos/a/hls-1/360p/seg_00000.ts")
    assert await storage.delete_prefix("videos/a") == 2
    assert not (tmp_path / "media" / "videos" / "a").exists()


def test_the_settings_choose_the_backend_and_refuse_s3_without_a_bucket(tmp_path):
    from core.config import ConfigError

    with pytest.raises(ConfigError, match="MEDIA_STORAGE=s3 needs a bucket: set S3_BUCKET"):
        load_settings(None, environ={"MEDIA_STORAGE": "s3"})
    with pytest.raises(ConfigError, match="MEDIA_STORAGE=s3 keeps no files this server could send"):
        load_settings(None, environ={"MEDIA_STORAGE": "s3", "S3_BUCKET": "media"})
    settings = load_settings(
        None,
        environ={
            "MEDIA_STORAGE": "s3",
            "MEDIA_EDGE": "s3",
            "S3_BUCKET": "media",
            "S3_ENDPOINT_URL": "http://minio:9000",
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s",
        },
    )
    assert isinstance(build_storage(settings, tmp_path), S3Storage)
    assert isinstance(build_storage(load_settings(None, environ={}), tmp_path), LocalStorage)


@pytest.fixture
def bucket(moto):
    """A fresh bucket on moto, and a plain boto3 client to look into it."""
    import boto3

    if not moto.running:
        moto.start()
    name = f"videoflix-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=moto.url,
        aws_access_key_id=ACCESS,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=name)
    return name, client


def s3_media(bucket_name: str, moto_url: str) -> dict:
    """Settings that keep media in that bucket, behind presigned URLs."""
    return {
        "media": {"storage": "s3", "edge": "s3"},
        "s3": {
            "bucket": bucket_name,
            "endpoint_url": moto_url,
            "access_key_id": ACCESS,
            "secret_access_key": SECRET,
            "max_attempts": 2,
            "retry_base_s": 0.05,
            "connect_timeout_s": 1,
            # a request the local moto server drops is tried again well within a test's 60 s wait
            "read_timeout_s": 10,
        },
    }


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_an_object_made_of_parts_is_joined_in_order_and_an_aborted_one_leaves_nothing(
    backend, tmp_path, store
):
    storage = LocalStorage(tmp_path / "media") if backend == "local" else store
    first, second = b"a" * PART, b"tail"
    upload_id = await storage.begin_parts("videos/p/source")
    later = await storage.put_part("videos/p/source", upload_id, 2, second)
    earlier = await storage.put_part("videos/p/source", upload_id, 1, first)
    await storage.complete_parts("videos/p/source", upload_id, [earlier, later])
    assert await storage.read_bytes("videos/p/source") == first + second

    dropped = await storage.begin_parts("videos/q/source")
    await storage.put_part("videos/q/source", dropped, 1, b"never joined")
    await storage.abort_parts("videos/q/source", dropped)
    assert await storage.list_keys("videos/q/") == []
    assert not await storage.exists("videos/q/source")
