"""Every recipe of docs/admin.md, performed through the driver, and what the API then answers."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.conftest import make_token, run_due


async def test_listing_users_shows_each_account_without_secrets(api, services, db):
    await make_token(services, "ann@example.com")
    users = (
        await db.users.find(
            {}, {"email": 1, "is_staff": 1, "is_verified": 1, "is_active": 1, "last_login": 1}
        )
        .sort("created_at", -1)
        .to_list(None)
    )
    assert [u["email"] for u in users] == ["ann@example.com"]
    assert "password" not in users[0]


async def test_users_email_has_a_unique_index_as_the_contract_says(db):
    indexes = await db.users.index_information()
    unique = {tuple(k for k, _ in index["key"]) for index in indexes.values() if index.get("unique")}
    assert ("email",) in unique and ("email_lower",) in unique


async def test_making_a_user_staff_lets_them_write_the_catalogue(api, services, db):
    token = await make_token(services, "Ann@Example.com")
    assert (await api.post("/api/categories/", {"name": "Drama"}, token=token)).code == 403
    await db.users.update_one({"email_lower": "ann@example.com"}, {"$set": {"is_staff": True}})
    assert (await api.post("/api/categories/", {"name": "Drama"}, token=token)).code == 201


async def test_deactivating_a_user_ends_every_session(api, services, db):
    token = await make_token(services, "ann@example.com")
    user = await db.users.find_one({"email_lower": "ann@example.com"})
    await db.users.update_one({"_id": user["_id"]}, {"$set": {"is_active": False}, "$inc": {"epoch": 1}})
    await db.tokens.delete_many({"user_id": str(user["_id"])})
    assert (await api.get("/api/accounts/users/me/", token=token)).code == 401


async def test_moving_the_epoch_logs_a_user_out_everywhere_and_the_password_still_works(api, services, db):
    token = await make_token(services, "ann@example.com")
    await db.users.update_one({"email_lower": "ann@example.com"}, {"$inc": {"epoch": 1}})
    assert (await api.get("/api/accounts/users/me/", token=token)).code == 401
    login = await api.post("/api/accounts/login/", {"email": "ann@example.com", "password": "password123"})
    assert login.code == 200
    assert (await api.get("/api/accounts/users/me/", token=login.data["token"])).code == 200


async def test_a_category_added_in_mongosh_is_listed(api, user_token, db, services):
    await db.categories.insert_one(
        {"name": "Drama", "slug": "drama", "description": "", "created_at": datetime.now(UTC)}
    )
    services.catalogue.categories.invalidate()  # another process wrote it; this one's cache is stale
    reply = await api.get("/api/categories/", token=user_token)
    assert [c["slug"] for c in reply.data] == ["drama"]


async def test_a_video_inserted_in_mongosh_is_seen_by_staff_as_pending(api, staff_token, db, services):
    await db.videos.insert_one(
        {
            "title": "Big Buck Bunny",
            "description": "An imported film",
            "category_id": None,
            "created_at": datetime.now(UTC),
            "status": "pending",
            "source": "imports/big_buck_bunny.mp4",
            "transcode_progress": 0,
            "renditions": [],
        }
    )
    reply = await api.get("/api/videos/?status=pending", token=staff_token)
    assert [v["title"] for v in reply.data] == ["Big Buck Bunny"]
    assert reply.data[0]["watch_position"] == 0


async def test_finding_failed_videos_shows_why(db):
    await db.videos.insert_many(
        [
            {
                "title": "broken",
                "status": "failed",
                "error": "The file has no video stream.",
                "created_at": datetime.now(UTC),
            },
            {"title": "fine", "status": "ready", "created_at": datetime.now(UTC)},
        ]
    )
    failed = await db.videos.find({"status": "failed"}, {"title": 1, "error": 1, "updated_at": 1}).to_list(
        None
    )
    assert [(v["title"], v["error"]) for v in failed] == [("broken", "The file has no video stream.")]


async def test_failed_mails_can_be_found_and_queued_again(db, services, clock, mailbox):
    await services.queue.stop()
    await services.mailer.send("welcome", "ann@example.com", {"name": "Ann", "link": "http://x/"})
    await db.jobs.update_one(
        {"type": "mail"}, {"$set": {"state": "failed", "attempts": 8, "last_error": "SMTP down"}}
    )
    failed = await db.jobs.find(
        {"type": "mail", "state": "failed"},
        {"payload.to": 1, "payload.template": 1, "attempts": 1, "last_error": 1},
    ).to_list(None)
    assert [m["last_error"] for m in failed] == ["SMTP down"]
    await db.jobs.update_many(
        {"type": "mail", "state": "failed"},
        {"$set": {"state": "queued", "attempts": 0, "run_after": clock()}},
    )
    assert await run_due(services.queue) == 1
    await mailbox.wait_for("ann@example.com")


async def test_the_most_viewed_recipe_ranks_videos_by_their_views_this_week(db):
    from bson import ObjectId

    from models.playback import VideoDays

    hit, other, now = ObjectId(), ObjectId(), datetime.now(UTC)
    days = VideoDays(db)
    await days.add(hit, now, views=3)
    await days.add(other, now, views=1)
    rows = await (
        await _aggregate(
            db.video_days,
            [
                {"$match": {"day": {"$gte": datetime.fromtimestamp(now.timestamp() - 6 * 86400, UTC)}}},
                {"$group": {"_id": "$video_id", "views": {"$sum": "$views"}}},
                {"$sort": {"views": -1}},
                {"$limit": 10},
            ],
        )
    ).to_list(None)
    assert [(row["_id"], row["views"]) for row in rows] == [(hit, 3), (other, 1)]


async def _aggregate(collection, pipeline):
    """The aggregation's cursor (PyMongo's async driver gives it from a coroutine)."""
    import inspect

    cursor = collection.aggregate(pipeline)
    return await cursor if inspect.isawaitable(cursor) else cursor
