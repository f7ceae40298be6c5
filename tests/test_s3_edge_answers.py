"""What a viewer sees when the object store lacks an object or is down, through the edge routes with
media in an S3-compatible store (moto's S3 server on loopback): 404 for a missing object, 503 for a
store that fails, and no answer ever names the store (bucket, endpoint); the log does."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from bson import ObjectId

from tests.test_storage_s3 import bucket, moto, s3_media  # noqa: F401 (fixtures)


@pytest.fixture
def settings_overrides(bucket, moto):
    return s3_media(bucket[0], moto.url)


@pytest.fixture
def video(services, db, bucket, io_loop):
    """A ready video whose ladder is named in MongoDB; `put` stores one of its files in the bucket."""
    video_id = ObjectId()
    folder = f"videos/{video_id}/hls-0badcafe"

    async def insert() -> str:
        now = services.clock()
        await db.videos.insert_one(
            {
                "_id": video_id,
                "title": "Gone missing",
                "description": "",
                "category": None,
                "status": "ready",
                "hls_path": f"{folder}/master.m3u8",
                "renditions": [{"height": 360, "width": 640, "bandwidth": 900000}],
                "created_at": now,
                "updated_at": now,
            }
        )
        user = await services.accounts.users.create(
            "viewer@example.com", "x", now, is_verified=True, is_staff=False
        )
        return services.grants.grant(str(video_id), user)

    grant = io_loop.run_sync(insert)
    name, client = bucket
    return {
        "folder": folder,
        "grant": grant,
        "put": lambda key, body: client.put_object(Bucket=name, Key=f"{folder}/{key}", Body=body),
    }


def names_the_store(reply, bucket_name: str, moto_url: str) -> bool:
    text = reply.body.decode("utf-8", "replace") + json.dumps(dict(reply.headers))
    host = urlsplit(moto_url)
    return bucket_name in text or host.hostname in text or str(host.port) in text


async def test_a_missing_master_playlist_is_404_not_a_503_naming_the_store(api, video, bucket, moto):
    reply = await api.get(f"/api/stream/{video['grant']}/master.m3u8")
    assert reply.code == 404
    assert reply.data == {"detail": "Not found."}
    assert not names_the_store(reply, bucket[0], moto.url)


async def test_a_missing_variant_playlist_behind_a_good_edge_token_is_404(api, services, video, bucket, moto):
    video["put"]("master.m3u8", b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=900000\n360p/index.m3u8\n")
    master = await api.get(f"/api/stream/{video['grant']}/master.m3u8")
    assert master.code == 200
    edge_url = next(line for line in master.body.decode().splitlines() if line.startswith("/api/edge/"))
    reply = await api.get(edge_url)
    assert reply.code == 404
    assert reply.data == {"detail": "Not found."}
    assert not names_the_store(reply, bucket[0], moto.url)
    other_rung = services.media.edge_tokens().url(video["folder"], "720p/index.m3u8")
    assert (await api.get(other_rung)).code == 404


async def test_a_store_that_is_down_answers_503_without_naming_it_and_the_log_names_it(
    api, video, bucket, moto, caplog
):
    moto.stop()
    try:
        reply = await api.get(f"/api/stream/{video['grant']}/master.m3u8")
    finally:
        moto.start()
    assert reply.code == 503
    assert reply.data["detail"].startswith("The media store failed to read ")
    assert not names_the_store(reply, bucket[0], moto.url)
    assert f"the media store (bucket '{bucket[0]}' at {moto.url})" in caplog.text
