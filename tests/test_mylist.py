"""My list over HTTP: add, remove, list (most recently added first), and what deletions take with them."""

from __future__ import annotations

import uuid

import pytest
from bson import ObjectId

from tests.conftest import make_token
from tests.test_playback import add_video, watch  # noqa: F401 (the fixture)


async def put(api, video, token):
    return await api.put(f"/api/videos/{video}/mylist/", token=token)


async def titles(api, token, query=""):
    reply = await api.get(f"/api/videos/mylist/{query}", token=token)
    assert reply.code == 200
    return reply.data


async def test_my_list_shows_the_most_recently_added_first(api, add_video, user_token, clock):
    first, second, third = await add_video("First"), await add_video("Second"), await add_video("Third")
    for video in (second, first, third):
        assert (await put(api, video, user_token)).code == 204
        clock.advance(seconds=1)
    assert [v["title"] for v in await titles(api, user_token)] == ["Third", "First", "Second"]


async def test_adding_again_keeps_its_place_and_removing_takes_it_off(api, add_video, user_token, clock):
    first, second = await add_video("First"), await add_video("Second")
    await put(api, first, user_token)
    clock.advance(seconds=1)
    await put(api, second, user_token)
    clock.advance(seconds=1)
    assert (await put(api, first, user_token)).code == 204
    assert [v["title"] for v in await titles(api, user_token)] == ["Second", "First"]
    assert (await api.delete(f"/api/videos/{second}/mylist/", token=user_token)).code == 204
    assert (await api.delete(f"/api/videos/{second}/mylist/", token=user_token)).code == 204
    assert [v["title"] for v in await titles(api, user_token)] == ["First"]


async def test_my_list_pages_like_the_catalogue(api, add_video, user_token, clock):
    for n in range(3):
        await put(api, await add_video(f"V{n}"), user_token)
        clock.advance(seconds=1)
    page = await titles(api, user_token, "?limit=2")
    assert page["count"] == 3
    assert [v["title"] for v in page["results"]] == ["V2", "V1"]
    assert page["next"].endswith("limit=2&offset=2")
    assert page["previous"] is None
    assert [v["title"] for v in (await titles(api, user_token, "?limit=2&offset=2"))["results"]] == ["V0"]


async def test_each_user_has_a_list_of_their_own(api, add_video, user_token, services):
    await put(api, await add_video(), user_token)
    other = await make_token(services, "other@example.com")
    assert await titles(api, other) == []


async def test_an_unknown_or_hidden_video_cannot_be_added(api, user_token, db, services):
    assert (await put(api, str(ObjectId()), user_token)).code == 404
    assert (await put(api, "not-an-id", user_token)).code == 404
    hidden = ObjectId()
    await db.videos.insert_one({"_id": hidden, "title": "Pending", "status": "pending"})
    services.catalogue.videos.invalidate()
    assert (await put(api, str(hidden), user_token)).code == 404


async def test_my_list_needs_a_verified_user(api):
    assert (await api.get("/api/videos/mylist/")).code == 401


async def test_a_deleted_video_leaves_every_list(api, add_video, user_token, staff_token, db):
    video = await add_video()
    await put(api, video, user_token)
    assert (await api.delete(f"/api/videos/{video}/", token=staff_token)).code == 204
    assert await titles(api, user_token) == []
    assert await db.mylist.count_documents({}) == 0


async def test_deleting_a_user_deletes_their_playback_data_list_and_progress(
    api, add_video, services, staff_token, db
):
    video = await add_video()
    token = await make_token(services, "leaving@example.com")
    stays = await make_token(services, "stays@example.com")
    user_id = (await api.get("/api/accounts/users/me/", token=token)).data["id"]
    for who in (token, stays):
        body = {"session": uuid.uuid4().hex, "events": watch(30)}
        assert (await api.post(f"/api/videos/{video}/playback/", body, token=who)).code == 202
    await put(api, video, token)
    await api.put(f"/api/videos/{video}/progress/", {"position": 30}, token=token)

    assert (await api.delete(f"/api/admin/users/{user_id}/", token=staff_token)).code == 204
    assert await db.playback_sessions.count_documents({"user_id": user_id}) == 0
    assert await db.playback_sessions.count_documents({}) == 1  # the other user's stays
    sessions = await raw_event_sessions(services, db)
    assert sessions and not any(s.startswith(f"{user_id}:") for s in sessions)  # the other's stay
    assert await db.mylist.count_documents({"user_id": user_id}) == 0
    assert await db.progress.count_documents({"user_id": user_id}) == 0
    assert await db.users.count_documents({"email": "leaving@example.com"}) == 0
    assert (await api.get("/api/accounts/users/me/", token=token)).code == 401
    # the counted views stay: they are the video's, not the user's
    assert (await api.get(f"/api/videos/{video}/", token=stays)).data["views"] == 2


async def raw_event_sessions(services, db) -> list[str]:
    """The sessions raw events are kept for: in the process on memory://, else in playback_events."""
    if services.db.in_memory:
        return [entry[0] for entry in services.analytics.raw_events.events]
    return [doc["session"] for doc in await db.playback_events.find({}).to_list(None)]


async def test_only_staff_delete_users_and_not_themselves(api, services, staff_token, user_token):
    me = (await api.get("/api/accounts/users/me/", token=staff_token)).data["id"]
    user = (await api.get("/api/accounts/users/me/", token=user_token)).data["id"]
    assert (await api.delete(f"/api/admin/users/{user}/", token=user_token)).code == 403
    assert (await api.delete(f"/api/admin/users/{me}/", token=staff_token)).code == 400
    assert (await api.delete(f"/api/admin/users/{ObjectId()}/", token=staff_token)).code == 404
    assert (await api.delete("/api/admin/users/nope/", token=staff_token)).code == 404


@pytest.fixture
def settings_overrides():
    return {"analytics": {"popular_cache_s": 0}}
