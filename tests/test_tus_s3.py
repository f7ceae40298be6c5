"""A resumable (tus) upload with media in an S3-compatible store (moto's S3 server on loopback): the
finished file lands in the bucket byte for byte; between PATCHes its bytes are multipart parts and a
tail object in the bucket, and nothing of it is on a local disk."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import pytest

from core.storage import files_below
from tests.test_storage_s3 import bucket, moto, s3_media  # noqa: F401 (fixtures)
from tests.test_tus import MIB, create, parts, patch, path_of
from tests.test_uploads import padded_mp4


@pytest.fixture
def settings_overrides(bucket, moto):
    settings = s3_media(bucket[0], moto.url)
    settings["s3"]["part_size_mb"] = 5
    return settings


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


@pytest.fixture
def padded(clips, tmp_path) -> bytes:
    """A real video of about 12 MiB: two whole 5 MiB parts and a tail."""
    target = tmp_path / "padded.mp4"
    padding = padded_mp4(clips["small"], target, 12 * MIB)
    return target.read_bytes() + b"\0" * padding


async def test_patches_shorter_than_a_part_leave_a_tail_in_the_bucket_and_nothing_on_disk(
    api, staff_token, settings, bucket, padded
):
    name, client = bucket
    where = path_of((await create(api, staff_token, len(padded))).headers["Location"])
    upload_id = where.rstrip("/").rsplit("/", 1)[1]
    cuts = [0, 3 * MIB, 7 * MIB + 1, 9 * MIB, len(padded)]  # under a part, over one, a tail, the rest
    for start, end in itertools.pairwise(cuts[:-1]):
        reply = await patch(api, staff_token, where, start, padded[start:end])
        assert (reply.code, reply.headers["Upload-Offset"]) == (204, str(end))
        assert files_below(Path(settings.media.root)) == []  # nothing of it on this machine
        tail = client.get_object(Bucket=name, Key=f"uploads/{upload_id}/tail")["Body"].read()
        assert padded[:end].endswith(tail) and len(tail) < 5 * MIB
    reply = await patch(api, staff_token, where, cuts[-2], padded[cuts[-2] :])
    video_id = reply.headers["Video-Id"]
    stored = client.get_object(Bucket=name, Key=f"videos/{video_id}/source")["Body"].read()
    assert hashlib.sha256(stored).digest() == hashlib.sha256(padded).digest()
    assert client.list_objects_v2(Bucket=name, Prefix="uploads/").get("KeyCount") == 0
    assert client.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
    assert files_below(Path(settings.media.root)) == []


async def test_an_expired_upload_in_the_bucket_is_swept_parts_and_tail(
    api, staff_token, services, clock, settings, bucket, padded
):
    name, client = bucket
    where = path_of((await create(api, staff_token, len(padded))).headers["Location"])
    assert (await patch(api, staff_token, where, 0, padded[: 6 * MIB])).code == 204
    assert len(client.list_multipart_uploads(Bucket=name).get("Uploads", [])) == 1
    clock.advance(hours=settings.media.upload_expiry_h + 1)
    assert await services.uploads.expire_stale() == (1, 6 * MIB)
    assert client.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
    assert client.list_objects_v2(Bucket=name, Prefix="uploads/").get("KeyCount") == 0
