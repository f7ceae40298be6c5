"""tus creations reserve their declared length against the free space, and each staff user has a cap
on open uploads; the free space is a figure the test gives (services built with `free_bytes`), not a
disk filled up."""

from __future__ import annotations

import pytest

from services.container import build_services
from tests.conftest import make_token
from tests.media import multipart
from tests.test_tus import create, head, patch, path_of

GIB = 1024**3
MIB = 1024**2
FREE = 77 * GIB  # what the attacker's server had


@pytest.fixture
def services(settings, db, clock, hasher, run_types, io_loop):
    """The composition root with a free-space figure instead of the disk's."""
    built = build_services(
        settings,
        db,
        clock=clock,
        hasher=hasher,
        run_types=run_types,
        node="test-node",
        free_bytes=lambda: FREE,
    )
    io_loop.run_sync(built.start)
    yield built
    io_loop.run_sync(built.stop)


@pytest.fixture
def settings_overrides():
    return {"media": {"max_upload_mb": 100 * 1024, "max_open_uploads": 1000}}


def staff_tokens(services, io_loop, count: int) -> list[str]:
    return [
        io_loop.run_sync(lambda n=n: make_token(services, f"staff{n}@example.com", staff=True))
        for n in range(count)
    ]


async def test_creations_of_more_than_the_free_space_are_refused_with_507(api, staff_token, settings):
    codes = [(await create(api, staff_token, 4 * GIB)).code for _ in range(300)]
    room = (FREE - settings.media.min_free_mb * MIB) // (4 * GIB)  # 19 of 4 GiB fit in 77 GiB
    assert codes == [201] * room + [507] * (300 - room)
    refused = await create(api, staff_token, 4 * GIB)
    assert refused.data == {"detail": "Not enough disk space on the server for this upload."}


async def test_bytes_an_upload_has_received_are_no_longer_reserved_twice(api, staff_token, settings):
    # 1 GiB of room beyond two reservations: the received bytes count once (on the disk, not reserved).
    first = path_of((await create(api, staff_token, 38 * GIB)).headers["Location"])
    await patch(api, staff_token, first, 0, b"x" * 1000)
    assert (await head(api, staff_token, first)).headers["Upload-Offset"] == "1000"
    assert (await create(api, staff_token, 38 * GIB)).code == 201
    assert (await create(api, staff_token, 1 * GIB)).code == 507


async def test_finishing_or_terminating_an_upload_frees_its_reservation(api, staff_token, settings, clips):
    room = FREE - settings.media.min_free_mb * MIB
    whole = path_of((await create(api, staff_token, 70 * GIB)).headers["Location"])
    assert (await create(api, staff_token, room - 70 * GIB + 1)).code == 507
    assert (await api.delete(whole, headers={"Tus-Resumable": "1.0.0"}, token=staff_token)).code == 204
    assert (await create(api, staff_token, room - 70 * GIB + 1)).code == 201  # terminated: freed

    # Finishing: a real clip becomes a video, and what it had reserved is free again.
    data = clips["small"].read_bytes()
    clip = path_of((await create(api, staff_token, len(data))).headers["Location"])
    left = room - (room - 70 * GIB + 1) - len(data)
    assert (await create(api, staff_token, left + 1)).code == 507
    finished = await patch(api, staff_token, clip, 0, data)
    assert finished.code == 204 and finished.headers["Video-Id"]
    assert (await create(api, staff_token, left + 1)).code == 201


async def test_an_expired_upload_reserves_nothing(api, staff_token, clock, settings):
    assert (await create(api, staff_token, 70 * GIB)).code == 201
    clock.advance(hours=settings.media.upload_expiry_h + 1)
    assert (await create(api, staff_token, 70 * GIB)).code == 201


@pytest.mark.parametrize("settings_overrides", [{"media": {"max_open_uploads": 3}}])
async def test_a_staff_user_past_the_cap_of_open_uploads_is_refused_with_403_and_a_sentence(
    api, staff_token, services, io_loop, settings
):
    made = [(await create(api, staff_token, 1000)).headers.get("Location") for _ in range(3)]
    assert all(made)
    refused = await create(api, staff_token, 1000)
    assert refused.code == 403
    assert refused.data == {
        "detail": "You already have 3 unfinished uploads, the most one may have; finish or delete one "
        "(DELETE its URL) before starting another."
    }
    assert refused.headers["Tus-Resumable"] == "1.0.0"
    other = await make_token(services, "other@example.com", staff=True)
    assert (await create(api, other, 1000)).code == 201  # the cap is per user
    await api.delete(path_of(made[0]), headers={"Tus-Resumable": "1.0.0"}, token=staff_token)
    assert (await create(api, staff_token, 1000)).code == 201  # terminating one makes room


def test_the_cap_defaults_to_ten():
    from core.config import Settings

    assert Settings().media.max_open_uploads == 10


async def test_a_multipart_upload_counts_the_room_tus_uploads_have_reserved(
    api, staff_token, settings, clips
):
    room = FREE - settings.media.min_free_mb * MIB
    data = clips["small"].read_bytes()
    body, content_type = multipart({"title": "one request"}, data)
    reserved = path_of((await create(api, staff_token, room - len(body) // 2)).headers["Location"])
    post = {"body": body, "headers": {"Content-Type": content_type}, "token": staff_token}
    refused = await api.post("/api/videos/", **post)
    assert (refused.code, refused.data) == (
        507,
        {"detail": "Not enough disk space on the server for this upload."},
    )
    assert (await api.delete(reserved, headers={"Tus-Resumable": "1.0.0"}, token=staff_token)).code == 204
    assert (await api.post("/api/videos/", **post)).code == 201
