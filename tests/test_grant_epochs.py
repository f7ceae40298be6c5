"""Stream grants die with the session: logout, a password change or reset, and deactivation end every
grant the user was given, and reactivation brings none back."""

from __future__ import annotations

from pathlib import Path

import pytest
from bson import ObjectId

from models.videos import new_video
from tests.mailbox import code_in

ACCOUNTS = "/api/accounts"
MASTER = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\n360p/index.m3u8\n"


@pytest.fixture
def video_id(db, services, settings, io_loop) -> str:
    """A ready video whose master playlist is on disk."""

    async def add() -> str:
        oid = ObjectId()
        doc = new_video(oid, "Ready", "", None, f"videos/{oid}/source", None, services.clock())
        doc.update(
            status="ready",
            duration=10.0,
            hls_path=f"videos/{oid}/hls/master.m3u8",
            renditions=[{"height": 360, "width": 640, "bandwidth": 800000}],
        )
        folder = Path(settings.media.root) / "videos" / str(oid) / "hls"
        folder.mkdir(parents=True)
        (folder / "master.m3u8").write_text(MASTER)
        await db.videos.insert_one(doc)
        services.catalogue.videos.invalidate()
        return str(oid)

    return io_loop.run_sync(add)


async def hls_url(api, video_id: str, token: str) -> str:
    reply = await api.get(f"/api/videos/{video_id}/", token=token)
    assert reply.code == 200
    return reply.data["hls_url"]


async def assert_revoked(api, url: str) -> None:
    reply = await api.get(url)
    assert (reply.code, reply.data) == (403, {"detail": "The stream link is no longer valid."})


async def test_a_grant_plays_until_the_user_logs_out(api, video_id, user_token):
    url = await hls_url(api, video_id, user_token)
    assert (await api.get(url)).code == 200
    assert (await api.post(f"{ACCOUNTS}/logout/", {}, token=user_token)).code == 200
    await assert_revoked(api, url)


async def test_logging_in_again_gives_a_new_grant_that_plays(api, video_id, user_token):
    old = await hls_url(api, video_id, user_token)
    await api.post(f"{ACCOUNTS}/logout/", {}, token=user_token)
    login = await api.post(f"{ACCOUNTS}/login/", {"email": "viewer@example.com", "password": "password123"})
    new = await hls_url(api, video_id, login.data["token"])
    assert new != old
    assert (await api.get(new)).code == 200
    await assert_revoked(api, old)


async def test_a_password_change_ends_earlier_grants_but_keeps_the_callers_token(api, video_id, user_token):
    url = await hls_url(api, video_id, user_token)
    changed = await api.post(
        f"{ACCOUNTS}/password/change/", {"password": "a brand new one"}, token=user_token
    )
    assert changed.code == 200
    await assert_revoked(api, url)
    fresh = await hls_url(api, video_id, user_token)
    assert (await api.get(fresh)).code == 200


async def test_a_password_reset_ends_earlier_grants(api, video_id, user_token, mailbox):
    url = await hls_url(api, video_id, user_token)
    assert (await api.post(f"{ACCOUNTS}/password/reset/", {"email": "viewer@example.com"})).code == 201
    [mail] = await mailbox.wait_for("viewer@example.com")
    reset = await api.post(
        f"{ACCOUNTS}/password/reset/verified/", {"code": code_in(mail), "password": "a brand new one"}
    )
    assert reset.code == 200
    await assert_revoked(api, url)


async def test_reactivating_a_user_brings_no_old_grant_back(api, video_id, user_token, staff_token):
    url = await hls_url(api, video_id, user_token)
    me = (await api.get(f"{ACCOUNTS}/users/me/", token=user_token)).data
    for active in (False, True):
        reply = await api.patch(f"/api/admin/users/{me['id']}/", {"is_active": active}, token=staff_token)
        assert reply.code == 200
    await assert_revoked(api, url)


async def test_another_users_logout_leaves_a_grant_playing(api, video_id, user_token, staff_token):
    url = await hls_url(api, video_id, user_token)
    await api.post(f"{ACCOUNTS}/logout/", {}, token=staff_token)
    assert (await api.get(url)).code == 200
