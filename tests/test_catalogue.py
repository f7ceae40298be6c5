"""The catalogue: categories, the video list, detail, edits and watch progress, over HTTP."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from bson import ObjectId

from models.videos import new_video


@pytest.fixture
def add_video(db, clock, services):
    """Insert a video document as the transcoder would leave it."""

    async def add(
        title="A video",
        *,
        status="ready",
        description="",
        category_id=None,
        minutes_ago=0,
        duration=100.0,
        created_at=None,
    ):
        video_id = ObjectId()
        doc = new_video(video_id, title, description, category_id, f"videos/{video_id}/source", None, clock())
        doc.update(
            status=status,
            duration=duration,
            width=640,
            height=360,
            created_at=created_at or clock() - timedelta(minutes=minutes_ago),
        )
        await db.videos.insert_one(doc)
        services.catalogue.videos.invalidate()
        return str(video_id)

    return add


# --- categories -----------------------------------------------------------------------------------


async def test_staff_create_categories_and_users_list_them_oldest_first(api, staff_token, user_token, clock):
    first = await api.post("/api/categories/", {"name": "Drama", "description": "Tears"}, token=staff_token)
    assert first.code == 201
    assert first.data["slug"] == "drama"
    assert set(first.data) == {"id", "name", "slug", "description", "created_at"}
    clock.advance(seconds=1)
    await api.post("/api/categories/", {"name": "Science & Nature"}, token=staff_token)
    reply = await api.get("/api/categories/", token=user_token)
    assert reply.code == 200
    assert [c["slug"] for c in reply.data] == ["drama", "science-nature"]
    assert reply.data[0]["created_at"].endswith("Z")


async def test_users_cannot_create_categories(api, user_token):
    assert (await api.post("/api/categories/", {"name": "Drama"}, token=user_token)).code == 403


async def test_categories_need_a_verified_user(api):
    assert (await api.get("/api/categories/")).code == 401


async def test_a_category_slug_is_unique(api, staff_token):
    await api.post("/api/categories/", {"name": "Drama"}, token=staff_token)
    reply = await api.post("/api/categories/", {"name": "Other", "slug": "drama"}, token=staff_token)
    assert reply.code == 400
    assert reply.data == {"slug": ["category with this slug already exists."]}


@pytest.mark.parametrize("name", ["日本語", "!!!", "¿?"])
async def test_a_name_with_nothing_to_make_a_slug_of_gets_one_from_the_id(api, staff_token, user_token, name):
    reply = await api.post("/api/categories/", {"name": name}, token=staff_token)
    assert reply.code == 201
    assert (reply.data["name"], reply.data["slug"]) == (name, f"category-{reply.data['id']}")
    found = await api.get(f"/api/videos/?category={reply.data['slug']}", token=user_token)
    assert (found.code, found.data) == (200, [])


async def test_a_category_needs_a_name(api, staff_token):
    reply = await api.post("/api/categories/", {"name": ""}, token=staff_token)
    assert reply.code == 400
    assert reply.data == {"name": ["This field may not be blank."]}


async def test_staff_rename_a_category(api, staff_token, user_token):
    made = (await api.post("/api/categories/", {"name": "Drama"}, token=staff_token)).data
    reply = await api.patch(
        f"/api/categories/{made['id']}/", {"name": "Dramas", "slug": "dramas"}, token=staff_token
    )
    assert reply.code == 200
    assert (reply.data["name"], reply.data["slug"]) == ("Dramas", "dramas")
    assert (await api.get("/api/categories/", token=user_token)).data[0]["name"] == "Dramas"


async def test_renaming_to_a_taken_slug_is_refused(api, staff_token):
    await api.post("/api/categories/", {"name": "Drama"}, token=staff_token)
    other = (await api.post("/api/categories/", {"name": "Comedy"}, token=staff_token)).data
    reply = await api.patch(f"/api/categories/{other['id']}/", {"slug": "drama"}, token=staff_token)
    assert reply.code == 400


async def test_a_used_category_cannot_be_deleted_and_an_unused_one_can(api, staff_token, add_video):
    used = (await api.post("/api/categories/", {"name": "Drama"}, token=staff_token)).data
    unused = (await api.post("/api/categories/", {"name": "Comedy"}, token=staff_token)).data
    await add_video(category_id=ObjectId(used["id"]))
    refused = await api.delete(f"/api/categories/{used['id']}/", token=staff_token)
    assert refused.code == 409
    assert "used by 1 video" in refused.data["detail"]
    assert (await api.delete(f"/api/categories/{unused['id']}/", token=staff_token)).code == 204
    assert (await api.delete(f"/api/categories/{unused['id']}/", token=staff_token)).code == 404


@pytest.mark.parametrize("bad_id", ["nope", "0" * 24])
async def test_an_unknown_category_id_is_404(api, staff_token, bad_id):
    assert (await api.patch(f"/api/categories/{bad_id}/", {"name": "x"}, token=staff_token)).code == 404


# --- the video list -------------------------------------------------------------------------------


async def test_users_see_only_ready_videos_newest_first_as_a_plain_array(api, user_token, add_video):
    await add_video("old", minutes_ago=10)
    await add_video("pending", status="pending", minutes_ago=1)
    await add_video("new", minutes_ago=0)
    reply = await api.get("/api/videos/", token=user_token)
    assert reply.code == 200
    assert [v["title"] for v in reply.data] == ["new", "old"]
    assert set(reply.data[0]) == {
        "id",
        "title",
        "description",
        "category",
        "created_at",
        "status",
        "transcode_progress",
        "error",
        "duration",
        "width",
        "height",
        "thumbnail_url",
        "hls_url",
        "dash_url",
        "renditions",
        "watch_position",
        "playable",
        "storyboard_url",
        "subtitles",
        "chapters",
        "chapters_url",
        "audio_tracks",
        "codecs",
        "views",
    }


async def test_videos_with_equal_timestamps_are_ordered_stably_by_id(api, user_token, add_video, clock):
    now = clock()
    ids = [await add_video(f"v{n}", created_at=now) for n in range(5)]
    reply = await api.get("/api/videos/", token=user_token)
    assert [v["id"] for v in reply.data] == sorted(ids, reverse=True)


async def test_staff_see_every_status_and_can_filter_by_one(api, staff_token, add_video):
    await add_video("ready")
    await add_video("failed", status="failed")
    assert len((await api.get("/api/videos/", token=staff_token)).data) == 2
    reply = await api.get("/api/videos/?status=failed", token=staff_token)
    assert [v["title"] for v in reply.data] == ["failed"]


async def test_an_unknown_status_filter_is_400_naming_it(api, staff_token):
    reply = await api.get("/api/videos/?status=lost", token=staff_token)
    assert reply.code == 400
    assert "status" in reply.data


async def test_users_filter_by_category_id_or_slug(api, staff_token, user_token, add_video):
    drama = (await api.post("/api/categories/", {"name": "Drama"}, token=staff_token)).data
    await add_video("in drama", category_id=ObjectId(drama["id"]))
    await add_video("elsewhere")
    by_slug = await api.get("/api/videos/?category=drama", token=user_token)
    by_id = await api.get(f"/api/videos/?category={drama['id']}", token=user_token)
    assert [v["title"] for v in by_slug.data] == [v["title"] for v in by_id.data] == ["in drama"]
    assert by_slug.data[0]["category"] == drama["id"]


async def test_an_unknown_category_filter_is_400_naming_it(api, user_token):
    reply = await api.get("/api/videos/?category=nope", token=user_token)
    assert reply.code == 400
    assert "category" in reply.data


async def test_search_matches_every_word_in_title_or_description_case_insensitively(
    api, user_token, add_video
):
    await add_video("Ocean Life", description="Whales and dolphins")
    await add_video("Ocean storms")
    await add_video("Mountains", description="no sea here")
    reply = await api.get("/api/videos/?search=ocean+WHALES", token=user_token)
    assert [v["title"] for v in reply.data] == ["Ocean Life"]
    assert len((await api.get("/api/videos/?search=ocean", token=user_token)).data) == 2


async def test_search_treats_regex_characters_literally(api, user_token, add_video):
    await add_video("C++ (basics)")
    await add_video("C programming")
    reply = await api.get("/api/videos/?search=c%2B%2B", token=user_token)
    assert [v["title"] for v in reply.data] == ["C++ (basics)"]
    assert (await api.get("/api/videos/?search=.*", token=user_token)).data == []


async def test_limit_and_offset_answer_the_drf_envelope(api, user_token, add_video):
    for n in range(5):
        await add_video(f"v{n}", minutes_ago=n)
    reply = await api.get("/api/videos/?limit=2&offset=2", token=user_token)
    assert reply.code == 200
    assert reply.data["count"] == 5
    assert [v["title"] for v in reply.data["results"]] == ["v2", "v3"]
    assert reply.data["next"].endswith("/api/videos/?limit=2&offset=4")
    assert reply.data["previous"].endswith("/api/videos/?limit=2&offset=0")
    first = await api.get("/api/videos/?limit=2", token=user_token)
    assert first.data["previous"] is None
    last = await api.get("/api/videos/?limit=2&offset=4", token=user_token)
    assert last.data["next"] is None


async def test_next_links_keep_the_other_filters(api, user_token, add_video):
    for n in range(3):
        await add_video(f"ocean {n}", minutes_ago=n)
    reply = await api.get("/api/videos/?search=ocean&limit=1", token=user_token)
    assert "search=ocean" in reply.data["next"]


async def test_an_offset_past_the_end_is_an_empty_page(api, user_token, add_video):
    await add_video()
    reply = await api.get("/api/videos/?limit=10&offset=50", token=user_token)
    assert reply.code == 200
    assert reply.data["results"] == []
    assert reply.data["count"] == 1
    assert reply.data["next"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=-3", "limit"),
        ("limit=abc", "limit"),
        ("offset=-1", "offset"),
        ("limit=2&offset=x", "offset"),
    ],
)
async def test_bad_pagination_parameters_are_400_naming_the_field(api, user_token, query, field):
    reply = await api.get(f"/api/videos/?{query}", token=user_token)
    assert reply.code == 400
    assert field in reply.data


async def test_a_huge_limit_is_capped(api, user_token, add_video, services):
    services.settings.catalogue.max_page_size = 3
    for n in range(5):
        await add_video(f"v{n}")
    reply = await api.get("/api/videos/?limit=1000000", token=user_token)
    assert len(reply.data["results"]) == 3
    assert reply.data["next"] is not None


async def test_the_list_shows_a_new_video_at_once_after_a_write(api, user_token, staff_token, add_video):
    first = await add_video("first")
    assert len((await api.get("/api/videos/", token=user_token)).data) == 1
    await api.patch(f"/api/videos/{first}/", {"title": "renamed"}, token=staff_token)
    assert (await api.get("/api/videos/", token=user_token)).data[0]["title"] == "renamed"


async def test_the_list_shows_admin_writes_once_the_cache_ttl_passes(add_video, db):
    import asyncio

    from models.videos import READY, VideoQuery, Videos

    videos = Videos(db, cache_ttl_s=0.05)  # as with a real MongoDB, which other processes write to
    video_id = await add_video("before")
    ready = VideoQuery((READY,))
    assert (await videos.page(ready, 0, None))[0][0].title == "before"
    await db.videos.update_one({"_id": ObjectId(video_id)}, {"$set": {"title": "after"}})  # as mongosh would
    assert (await videos.page(ready, 0, None))[0][0].title == "before"
    await asyncio.sleep(0.1)
    assert (await videos.page(ready, 0, None))[0][0].title == "after"


# --- detail and edits -----------------------------------------------------------------------------


async def test_video_detail_has_the_contract_shape(api, user_token, add_video):
    video_id = await add_video("Detail", description="About it")
    reply = await api.get(f"/api/videos/{video_id}/", token=user_token)
    assert reply.code == 200
    assert reply.data["id"] == video_id
    assert (reply.data["title"], reply.data["status"], reply.data["watch_position"]) == ("Detail", "ready", 0)
    assert reply.data["hls_url"] is None or reply.data["hls_url"].startswith("/api/stream/")


@pytest.mark.parametrize("bad_id", ["not-an-id", "0" * 24, "%00"])
async def test_an_unknown_or_malformed_video_id_is_404(api, user_token, bad_id):
    reply = await api.get(f"/api/videos/{bad_id}/", token=user_token)
    assert reply.code == 404
    assert reply.data == {"detail": "Not found."}


async def test_users_cannot_see_a_video_that_is_not_ready(api, user_token, staff_token, add_video):
    video_id = await add_video(status="processing")
    assert (await api.get(f"/api/videos/{video_id}/", token=user_token)).code == 404
    assert (await api.get(f"/api/videos/{video_id}/", token=staff_token)).code == 200


async def test_staff_edit_title_description_and_category(api, staff_token, add_video):
    drama = (await api.post("/api/categories/", {"name": "Drama"}, token=staff_token)).data
    video_id = await add_video()
    reply = await api.patch(
        f"/api/videos/{video_id}/",
        {"title": "New", "description": "D", "category": "drama"},
        token=staff_token,
    )
    assert reply.code == 200
    assert (reply.data["title"], reply.data["description"], reply.data["category"]) == (
        "New",
        "D",
        drama["id"],
    )
    cleared = await api.patch(f"/api/videos/{video_id}/", {"category": None}, token=staff_token)
    assert cleared.data["category"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": None}, "title"),
        ({"title": 5}, "title"),
        ({"category": "nope"}, "category"),
    ],
)
async def test_bad_edits_are_field_errors(api, staff_token, add_video, body, field):
    video_id = await add_video()
    reply = await api.patch(f"/api/videos/{video_id}/", body, token=staff_token)
    assert reply.code == 400
    assert field in reply.data


async def schema_of(api, template, method, media_type="application/json"):
    """The body schema the served document gives an operation (references resolved)."""
    document = (await api.get("/api/schema/")).data
    schema = document["paths"][template][method]["requestBody"]["content"][media_type]["schema"]
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


@pytest.mark.parametrize("field", ["title", "description"])
async def test_an_edit_may_leave_out_a_title_or_description_but_not_send_it_null(
    api, staff_token, add_video, field
):
    declared = (await schema_of(api, "/api/videos/{video_id}/", "patch"))["properties"][field]
    assert declared["type"] == "string" and "anyOf" not in declared and "default" not in declared
    video_id = await add_video()
    reply = await api.patch(f"/api/videos/{video_id}/", {field: None}, token=staff_token)
    assert (reply.code, reply.data) == (400, {field: ["This field may not be null."]})
    untouched = await api.patch(f"/api/videos/{video_id}/", {}, token=staff_token)
    assert (untouched.code, untouched.data["title"]) == (200, "A video")


@pytest.mark.parametrize(
    ("template", "method", "media_type"),
    [
        ("/api/videos/{video_id}/", "patch", "application/json"),
        ("/api/videos/", "post", "multipart/form-data"),
    ],
)
async def test_a_title_is_declared_to_hold_more_than_white_space_as_the_server_enforces(
    api, staff_token, add_video, template, method, media_type
):
    pattern = (await schema_of(api, template, method, media_type))["properties"]["title"]["pattern"]
    assert not re.search(pattern, " \t\u3000") and re.search(pattern, " x ")
    video_id = await add_video()
    reply = await api.patch(f"/api/videos/{video_id}/", {"title": " \t\u3000"}, token=staff_token)
    assert (reply.code, reply.data) == (400, {"title": ["This field may not be blank."]})


async def test_users_cannot_edit_or_delete_videos(api, user_token, add_video):
    video_id = await add_video()
    assert (await api.patch(f"/api/videos/{video_id}/", {"title": "x"}, token=user_token)).code == 403
    assert (await api.delete(f"/api/videos/{video_id}/", token=user_token)).code == 403


async def test_retranscode_queues_a_job(api, staff_token, add_video, db):
    video_id = await add_video(status="failed")
    reply = await api.post(f"/api/videos/{video_id}/retranscode/", token=staff_token)
    assert reply.code == 202
    job = await db.jobs.find_one({"key": f"transcode:{video_id}"})
    assert (job["type"], job["state"], job["payload"]["video_id"]) == (
        "transcode",
        "queued",
        ObjectId(video_id),
    )
    assert (await db.videos.find_one({"_id": ObjectId(video_id)}))["status"] == "pending"
    assert (await api.post(f"/api/videos/{'0' * 24}/retranscode/", token=staff_token)).code == 404


# --- watch progress -------------------------------------------------------------------------------


async def test_progress_is_saved_per_user_and_shown_in_the_video(api, user_token, staff_token, add_video):
    video_id = await add_video(duration=100)
    empty = await api.get(f"/api/videos/{video_id}/progress/", token=user_token)
    assert empty.data == {"position": 0, "duration": 100, "updated_at": None}
    saved = await api.put(f"/api/videos/{video_id}/progress/", {"position": 42.5}, token=user_token)
    assert saved.code == 200
    assert saved.data["position"] == 42.5
    assert saved.data["updated_at"].endswith("Z")
    assert (await api.get(f"/api/videos/{video_id}/", token=user_token)).data["watch_position"] == 42.5
    assert (await api.get("/api/videos/", token=user_token)).data[0]["watch_position"] == 42.5
    assert (await api.get(f"/api/videos/{video_id}/", token=staff_token)).data["watch_position"] == 0


async def test_progress_is_clamped_to_the_duration_and_upserted(api, user_token, add_video, db):
    video_id = await add_video(duration=100)
    await api.put(f"/api/videos/{video_id}/progress/", {"position": 10}, token=user_token)
    reply = await api.put(f"/api/videos/{video_id}/progress/", {"position": 5000}, token=user_token)
    assert reply.data["position"] == 100
    assert await db.progress.count_documents({}) == 1


@pytest.mark.parametrize("position", [-1, "10", True, None, [1]])
async def test_bad_positions_are_field_errors(api, user_token, add_video, position):
    video_id = await add_video()
    reply = await api.put(f"/api/videos/{video_id}/progress/", {"position": position}, token=user_token)
    assert reply.code == 400
    assert "position" in reply.data


async def test_a_position_is_declared_from_zero_and_a_negative_one_is_a_field_error(
    api, user_token, add_video
):
    assert (await schema_of(api, "/api/videos/{video_id}/progress/", "put"))["properties"]["position"][
        "minimum"
    ] == 0
    video_id = await add_video()
    reply = await api.put(f"/api/videos/{video_id}/progress/", {"position": -0.5}, token=user_token)
    assert (reply.code, reply.data) == (
        400,
        {"position": ["Ensure this value is greater than or equal to 0."]},
    )
    reply = await api.put(f"/api/videos/{video_id}/progress/", {"position": 0}, token=user_token)
    assert (reply.code, reply.data["position"]) == (200, 0)


async def test_progress_of_an_unknown_video_is_404(api, user_token):
    reply = await api.put(f"/api/videos/{'0' * 24}/progress/", {"position": 1}, token=user_token)
    assert reply.code == 404


async def test_continue_watching_lists_started_unfinished_videos_most_recent_first(
    api, user_token, add_video, clock
):
    a, b, done, _untouched = (
        await add_video("a"),
        await add_video("b"),
        await add_video("done"),
        await add_video("untouched"),
    )
    await api.put(f"/api/videos/{a}/progress/", {"position": 10}, token=user_token)
    clock.advance(seconds=5)
    await api.put(f"/api/videos/{b}/progress/", {"position": 20}, token=user_token)
    await api.put(f"/api/videos/{done}/progress/", {"position": 99}, token=user_token)
    reply = await api.get("/api/videos/continue/", token=user_token)
    assert reply.code == 200
    assert [v["title"] for v in reply.data] == ["b", "a"]
    assert reply.data[0]["watch_position"] == 20


async def test_deleting_a_video_deletes_its_progress_and_job(api, user_token, staff_token, add_video, db):
    video_id = await add_video()
    await api.put(f"/api/videos/{video_id}/progress/", {"position": 10}, token=user_token)
    await api.post(f"/api/videos/{video_id}/retranscode/", token=staff_token)
    assert (await api.delete(f"/api/videos/{video_id}/", token=staff_token)).code == 204
    assert await db.progress.count_documents({}) == 0
    assert await db.jobs.count_documents({"type": "transcode"}) == 0
    assert (await api.get("/api/videos/continue/", token=user_token)).data == []
    assert (await api.delete(f"/api/videos/{video_id}/", token=staff_token)).code == 404
