"""A resumable (tus) upload with media in an S3-compatible store (moto's S3 server on loopback): the
finished file lands in the bucket byte for byte, and nothing stays behind on local disk."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.test_storage_s3 import bucket, moto, s3_media  # noqa: F401 (fixtures)
from tests.test_tus import create, parts, patch, path_of


@pytest.fixture
def settings_overrides(bucket, moto):
    return s3_media(bucket[0], moto.url)


async def test_a_resumable_upload_lands_in_the_bucket_byte_identical(
    api, staff_token, clips, settings, bucket
):
    data = clips["small"].read_bytes()
    where = path_of((await create(api, staff_token, len(data))).headers["Location"])
    half = len(data) // 2
    assert (await patch(api, staff_token, where, 0, data[:half])).code == 204
    reply = await patch(api, staff_token, where, half, data[half:])
    assert reply.code == 204
    video_id = reply.headers["Video-Id"]
    name, client = bucket
    stored = client.get_object(Bucket=name, Key=f"videos/{video_id}/source")["Body"].read()
    assert hashlib.sha256(stored).digest() == hashlib.sha256(data).digest()
    assert parts(settings) == []
    assert not (Path(settings.media.root) / "videos" / video_id).exists()
