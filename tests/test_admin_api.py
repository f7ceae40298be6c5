"""The admin API: staff see and steer the job queue and the mail, and manage users."""

from __future__ import annotations

import pytest

from tests.conftest import make_token, run_due

ADMIN = "/api/admin"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/jobs/"),
        ("POST", "/jobs/0123456789abcdef01234567/retry/"),
        ("POST", "/jobs/0123456789abcdef01234567/cancel/"),
        ("GET", "/mail/"),
        ("POST", "/mail/0123456789abcdef01234567/retry/"),
        ("GET", "/users/"),
        ("PATCH", "/users/0123456789abcdef01234567/"),
    ],
)
async def test_every_admin_endpoint_refuses_a_plain_user_with_403_and_no_token_with_401(
    api, user_token, method, path
):
    body = {} if method in ("POST", "PATCH") else None
    assert (await api.request(method, ADMIN + path, body, token=user_token)).code == 403
    anonymous = await api.request(method, ADMIN + path, body, token=None)
    assert anonymous.code == 401
    assert anonymous.data == {"detail": "Authentication credentials were not provided."}


async def test_staff_list_the_mail_queue_without_bodies_and_filter_it_by_state(api, staff_token, services):
    await services.mailer.send("welcome", "ann@example.com", {"name": "Ann", "link": "http://x/"})
    reply = await api.get(f"{ADMIN}/mail/", token=staff_token)
    assert reply.code == 200
    assert reply.data["count"] == 1
    [mail] = reply.data["results"]
    assert (mail["to"], mail["template"], mail["subject"]) == (
        "ann@example.com",
        "welcome",
        "Welcome to Videoflix",
    )
    assert "text" not in mail and "html" not in mail
    assert (await api.get(f"{ADMIN}/mail/?state=failed", token=staff_token)).data["count"] == 0
    bad = await api.get(f"{ADMIN}/mail/?state=lost", token=staff_token)
    assert bad.code == 400
    assert "state" in bad.data


async def test_retrying_a_failed_mail_delivers_it_once_to_the_smtp_server(
    api, staff_token, services, db, mailbox
):
    mailbox.stop()
    await services.queue.stop()
    services.settings.email.max_attempts = 1
    await services.mailer.send("welcome", "ann@example.com", {"name": "Ann", "link": "http://x/"})
    await run_due(services.queue)
    [failed] = (await api.get(f"{ADMIN}/mail/?state=failed", token=staff_token)).data["results"]
    assert failed["last_error"] and failed["has_body"]
    mailbox.start()
    reply = await api.post(f"{ADMIN}/mail/{failed['id']}/retry/", token=staff_token)
    assert reply.code == 200
    assert reply.data["state"] == "queued"
    assert await run_due(services.queue) == 1
    await mailbox.wait_for("ann@example.com")
    assert len(mailbox.to("ann@example.com")) == 1
    sent = (await api.get(f"{ADMIN}/mail/?state=done", token=staff_token)).data["results"]
    assert [m["id"] for m in sent] == [failed["id"]] and not sent[0]["has_body"]
    again = await api.post(f"{ADMIN}/mail/{failed['id']}/retry/", token=staff_token)
    assert again.code == 409  # its text, with its codes, is gone: it is never sent twice
    assert len(mailbox.to("ann@example.com")) == 1


async def test_retrying_or_cancelling_an_unknown_job_is_404_and_a_wrong_state_is_409(
    api, staff_token, services
):
    for path in ("retry", "cancel"):
        assert (await api.post(f"{ADMIN}/jobs/{'0' * 24}/{path}/", token=staff_token)).code == 404
        assert (await api.post(f"{ADMIN}/jobs/not-an-id/{path}/", token=staff_token)).code == 404
    await services.queue.stop()
    job_id = await services.queue.enqueue("mail", {"to": "x@example.com", "template": "t", "subject": "s"})
    reply = await api.post(f"{ADMIN}/jobs/{job_id}/retry/", token=staff_token)
    assert reply.code == 409
    assert reply.data == {"detail": "Only a failed, cancelled or finished job can be retried."}


async def test_staff_list_jobs_by_type_and_state_and_a_bad_filter_is_a_field_error(
    api, staff_token, services
):
    await services.queue.stop()
    await services.queue.enqueue("mail", {"to": "x@example.com", "template": "t", "subject": "s"})
    reply = await api.get(f"{ADMIN}/jobs/?type=mail&state=queued", token=staff_token)
    [job] = reply.data["results"]
    assert (job["type"], job["state"], job["attempts"], job["owner"]) == ("mail", "queued", 0, None)
    assert {"last_error", "lease_until", "queued_at", "started_at", "finished_at", "max_attempts"} <= set(job)
    assert (await api.get(f"{ADMIN}/jobs/?type=transcode", token=staff_token)).data["count"] == 0
    assert (await api.get(f"{ADMIN}/jobs/?type=nope", token=staff_token)).data == {
        "type": ["Select one of: mail, transcode, publish, av1, audio_track."]
    }
    assert (await api.get(f"{ADMIN}/jobs/?limit=0", token=staff_token)).code == 400


async def test_the_job_list_hides_a_mails_bodies_and_shows_ids_and_times_as_strings(
    api, staff_token, services
):
    """The admin service hands out typed jobs (datetimes, ObjectIds); the reply model writes the JSON."""
    await services.queue.stop()
    await services.mailer.send("welcome", "ann@example.com", {"name": "Ann", "link": "http://x/"})
    [typed], _ = await services.admin.jobs(state=None, type_name=None, offset=0, limit=10)
    assert typed.type == "mail" and "text" in typed.payload and typed.queued_at is not None
    [job] = (await api.get(f"{ADMIN}/jobs/", token=staff_token)).data["results"]
    assert job["id"] == typed.id
    assert {"to", "template", "subject"} <= set(job["payload"]) and not {"text", "html"} & set(job["payload"])
    assert job["queued_at"].endswith("Z") and job["started_at"] is None


async def test_cancelling_a_queued_job_keeps_it_from_running(api, staff_token, services, mailbox):
    await services.queue.stop()
    await services.mailer.send("welcome", "ann@example.com", {"name": "Ann", "link": "http://x/"})
    [job] = (await api.get(f"{ADMIN}/jobs/", token=staff_token)).data["results"]
    reply = await api.post(f"{ADMIN}/jobs/{job['id']}/cancel/", token=staff_token)
    assert (reply.code, reply.data["state"]) == (200, "cancelled")
    assert await run_due(services.queue) == 0
    assert (await api.post(f"{ADMIN}/jobs/{job['id']}/cancel/", token=staff_token)).code == 409


async def test_staff_find_users_by_words_and_page_through_them(api, staff_token, services):
    for name in ("ann", "bob", "annabel"):
        await make_token(services, f"{name}@example.com")
    reply = await api.get(f"{ADMIN}/users/?search=ann", token=staff_token)
    assert [u["email"] for u in reply.data["results"]] == ["ann@example.com", "annabel@example.com"]
    assert {"is_active", "is_staff", "is_verified", "last_login"} <= set(reply.data["results"][0])
    assert "password" not in reply.data["results"][0]
    page = await api.get(f"{ADMIN}/users/?limit=2", token=staff_token)
    assert page.data["count"] == 4 and len(page.data["results"]) == 2 and page.data["next"]


async def test_staff_make_another_user_staff(api, staff_token, user_token, services):
    me = await api.get("/api/accounts/users/me/", token=user_token)
    reply = await api.patch(f"{ADMIN}/users/{me.data['id']}/", {"is_staff": True}, token=staff_token)
    assert (reply.code, reply.data["is_staff"]) == (200, True)
    assert (await api.get(f"{ADMIN}/users/", token=user_token)).code == 200


async def test_deactivating_a_user_kills_their_tokens_and_stream_grants(
    api, staff_token, user_token, services
):
    me = (await api.get("/api/accounts/users/me/", token=user_token)).data
    grant = services.grants.grant("0" * 24, await services.accounts.user_for_token(user_token))
    reply = await api.patch(f"{ADMIN}/users/{me['id']}/", {"is_active": False}, token=staff_token)
    assert (reply.code, reply.data["is_active"]) == (200, False)
    assert (await api.get("/api/accounts/users/me/", token=user_token)).code == 401
    stream = await api.get(f"/api/stream/{grant}/master.m3u8")
    assert stream.code == 403
    assert stream.data == {"detail": "The stream link is no longer valid."}
    login = await api.post("/api/accounts/login/", {"email": "viewer@example.com", "password": "password123"})
    assert login.data == {"detail": "User account not active."}


@pytest.mark.parametrize(
    ("body", "field"), [({"is_staff": "yes"}, "is_staff"), ({"is_active": 1}, "is_active")]
)
async def test_user_flags_must_be_booleans(api, staff_token, user_token, body, field):
    me = (await api.get("/api/accounts/users/me/", token=user_token)).data
    reply = await api.patch(f"{ADMIN}/users/{me['id']}/", body, token=staff_token)
    assert reply.code == 400
    assert field in reply.data


async def test_staff_cannot_lock_themselves_out_and_unknown_users_are_404(api, staff_token):
    me = (await api.get("/api/accounts/users/me/", token=staff_token)).data
    for body in ({"is_staff": False}, {"is_active": False}):
        reply = await api.patch(f"{ADMIN}/users/{me['id']}/", body, token=staff_token)
        assert reply.code == 400
        assert "yourself" in reply.data["detail"]
    assert (await api.patch(f"{ADMIN}/users/{'0' * 24}/", {"is_staff": True}, token=staff_token)).code == 404
    assert (await api.patch(f"{ADMIN}/users/nope/", {"is_staff": True}, token=staff_token)).code == 404
