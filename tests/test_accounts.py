"""Accounts end to end over HTTP, with the real mails read from an in-process SMTP server."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest

from core import logs
from tests.conftest import run_due
from tests.mailbox import code_in, html_of, link_in, text_of

PASSWORD = "correct horse battery"
ACCOUNTS = "/api/accounts"


async def signup(api, email="ann@example.com", password=PASSWORD, **names):
    return await api.post(f"{ACCOUNTS}/signup/", {"email": email, "password": password, **names})


async def verified_user(api, mailbox, email="ann@example.com", password=PASSWORD) -> str:
    """Sign up, verify through the mailed link, log in; the login token."""
    assert (await signup(api, email, password)).code == 201
    [mail] = await mailbox.wait_for(email)
    assert (await api.get(f"{ACCOUNTS}/signup/verify/?code={code_in(mail)}")).code == 200
    reply = await api.post(f"{ACCOUNTS}/login/", {"email": email, "password": password})
    assert reply.code == 200
    return reply.data["token"]


# --- hostile bodies -------------------------------------------------------------------------------


async def test_login_answers_400_to_a_body_nested_100000_deep_and_logs_one_short_line(api, caplog):
    with caplog.at_level("INFO"):
        reply = await api.post(
            f"{ACCOUNTS}/login/", body="[" * 100_000, headers={"Content-Type": "application/json"}
        )
    assert reply.code == 400
    assert reply.data["detail"].startswith("JSON parse error")
    assert "Traceback" not in caplog.text
    assert len(caplog.text) < 300, caplog.text


async def test_malformed_login_bodies_count_against_the_client_limit_before_they_are_parsed(api, settings):
    limit = int(settings.accounts.rate_limit_login.split("/")[0])
    deep = {"body": "[" * 100_000, "headers": {"Content-Type": "application/json"}}
    for _ in range(limit):
        assert (await api.post(f"{ACCOUNTS}/login/", **deep)).code == 400
    reply = await api.post(f"{ACCOUNTS}/login/", **deep)
    assert reply.code == 429
    assert reply.headers["Retry-After"]
    reply = await api.post(f"{ACCOUNTS}/login/", {"email": "ann@example.com", "password": PASSWORD})
    assert reply.code == 429


# --- signup and verification ----------------------------------------------------------------------


async def test_signup_answers_201_with_the_user_and_a_token(api):
    reply = await signup(api, first_name="Ann", last_name="Lee")
    assert reply.code == 201
    assert reply.data["email"] == "ann@example.com"
    assert (reply.data["first_name"], reply.data["last_name"]) == ("Ann", "Lee")
    assert len(reply.data["token"]) >= 40


async def test_signup_mails_a_multipart_verify_link_to_the_front_end(api, mailbox):
    await signup(api, first_name="Ann")
    [mail] = await mailbox.wait_for("ann@example.com")
    assert mail.is_multipart()
    assert link_in(mail).startswith("http://localhost:4200/signup/verify?code=")
    assert "Hello Ann" in text_of(mail)
    assert code_in(mail) in html_of(mail)
    assert mail["Subject"] == "Confirm your Videoflix e-mail address"


async def test_the_signup_token_is_inert_until_the_address_is_verified(api):
    token = (await signup(api)).data["token"]
    reply = await api.get(f"{ACCOUNTS}/users/me/", token=token)
    assert reply.code == 401
    assert reply.data == {"detail": "User account not verified."}


async def test_verifying_the_signup_code_answers_a_token_that_works(api, mailbox):
    signup_token = (await signup(api)).data["token"]
    [mail] = await mailbox.wait_for("ann@example.com")
    reply = await api.get(f"{ACCOUNTS}/signup/verify/?code={code_in(mail)}")
    assert reply.code == 200
    assert reply.data["success"] == "Email address verified."
    me = await api.get(f"{ACCOUNTS}/users/me/", token=reply.data["token"])
    assert me.code == 200
    assert me.data["email"] == "ann@example.com"
    assert me.data["is_staff"] is False
    assert set(me.data) == {"id", "email", "first_name", "last_name", "is_staff"}
    assert (await api.get(f"{ACCOUNTS}/users/me/", token=signup_token)).code == 200


async def test_verification_sends_a_welcome_mail(api, mailbox):
    await verified_user(api, mailbox)
    mails = await mailbox.wait_for("ann@example.com", count=2)
    assert mails[1]["Subject"] == "Welcome to Videoflix"


async def test_a_verify_code_works_once(api, mailbox):
    await signup(api)
    [mail] = await mailbox.wait_for("ann@example.com")
    assert (await api.get(f"{ACCOUNTS}/signup/verify/?code={code_in(mail)}")).code == 200
    again = await api.get(f"{ACCOUNTS}/signup/verify/?code={code_in(mail)}")
    assert again.code == 400
    assert again.data == {"detail": "Unable to verify user."}


async def test_an_expired_signup_code_is_refused(api, mailbox, clock):
    await signup(api)
    [mail] = await mailbox.wait_for("ann@example.com")
    clock.advance(days=3, seconds=1)
    reply = await api.get(f"{ACCOUNTS}/signup/verify/?code={code_in(mail)}")
    assert reply.code == 400
    assert reply.data == {"detail": "Unable to verify user."}


@pytest.mark.parametrize("path", ["signup/verify/", "password/reset/verify/", "email/change/verify/"])
@pytest.mark.parametrize("code", ["", "garbage", "eyJ1IjoiMSJ9.awV3Rw.forged-signature", "%00"])
async def test_forged_or_missing_codes_get_400_not_500(api, path, code):
    reply = await api.get(f"{ACCOUNTS}/{path}?code={code}")
    assert reply.code == 400
    assert reply.data == {"detail": "Unable to verify user."}


async def test_a_truncated_code_is_refused(api, mailbox):
    await signup(api)
    [mail] = await mailbox.wait_for("ann@example.com")
    reply = await api.get(f"{ACCOUNTS}/signup/verify/?code={code_in(mail)[:-4]}")
    assert reply.code == 400


async def test_a_signup_code_does_not_pass_as_a_reset_code(api, mailbox):
    await signup(api)
    [mail] = await mailbox.wait_for("ann@example.com")
    reply = await api.get(f"{ACCOUNTS}/password/reset/verify/?code={code_in(mail)}")
    assert reply.code == 400


async def test_signup_with_a_verified_address_is_refused(api, mailbox):
    await verified_user(api, mailbox)
    reply = await signup(api, email="ANN@example.com")
    assert reply.code == 400
    assert reply.data == {"detail": "Email address already taken."}


async def test_signing_up_again_unverified_sends_a_new_link_and_the_old_one_dies(api, mailbox, db):
    await signup(api, password="first password")
    await signup(api, password="second password")
    first, second = await mailbox.wait_for("ann@example.com", count=2)
    assert (await api.get(f"{ACCOUNTS}/signup/verify/?code={code_in(first)}")).code == 400
    assert (await api.get(f"{ACCOUNTS}/signup/verify/?code={code_in(second)}")).code == 200
    assert await db.users.count_documents({}) == 1
    login = await api.post(f"{ACCOUNTS}/login/", {"email": "ann@example.com", "password": "second password"})
    assert login.code == 200


async def test_concurrent_signups_of_one_address_end_with_one_user(api, db):
    replies = await asyncio.gather(*(signup(api, email="race@example.com") for _ in range(5)))
    assert all(reply.code in (201, 400) for reply in replies)
    assert await db.users.count_documents({}) == 1


async def test_emails_are_compared_case_insensitively_and_stored_as_given(api, mailbox, db):
    await verified_user(api, mailbox, email="Ann.Lee@Example.com")
    assert (await db.users.find_one({}))["email"] == "Ann.Lee@Example.com"
    reply = await api.post(f"{ACCOUNTS}/login/", {"email": "ann.lee@example.COM", "password": PASSWORD})
    assert reply.code == 200


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"email": ["This field is required."], "password": ["This field is required."]}),
        ({"email": "ann@example.com"}, {"password": ["This field is required."]}),
        ({"email": 5, "password": PASSWORD}, {"email": ["Not a valid string."]}),
        ({"email": "not-an-address", "password": PASSWORD}, {"email": ["Enter a valid email address."]}),
        (
            {"email": "ann@example.com", "password": "short"},
            {"password": ["Ensure this field has at least 8 characters."]},
        ),
        ({"email": "ann@example.com", "password": ["a list"]}, {"password": ["Not a valid string."]}),
        (
            {"email": "ann@example.com", "password": PASSWORD, "first_name": "x" * 151},
            {"first_name": ["Ensure this field has no more than 150 characters."]},
        ),
    ],
)
async def test_signup_field_errors_name_the_field(api, body, errors):
    reply = await api.post(f"{ACCOUNTS}/signup/", body)
    assert reply.code == 400
    assert reply.data == errors


async def test_signup_with_malformed_json_is_400(api):
    reply = await api.post(
        f"{ACCOUNTS}/signup/", body='{"email": ', headers={"Content-Type": "application/json"}
    )
    assert reply.code == 400
    assert "JSON parse error" in reply.data["detail"]


async def test_signup_with_a_json_array_is_400(api):
    reply = await api.post(f"{ACCOUNTS}/signup/", ["ann@example.com"])
    assert reply.code == 400
    assert reply.data == {"detail": "Expected a JSON object."}


# --- login and logout --------------------------------------------------------------------------------


async def test_login_logout_and_the_token_is_refused_afterwards(api, mailbox):
    token = await verified_user(api, mailbox)
    assert (await api.get(f"{ACCOUNTS}/users/me/", token=token)).code == 200
    reply = await api.get(f"{ACCOUNTS}/logout/", token=token)
    assert reply.code == 200
    assert reply.data == {"success": "User logged out."}
    refused = await api.get(f"{ACCOUNTS}/users/me/", token=token)
    assert refused.code == 401
    assert refused.data == {"detail": "Invalid token."}


async def test_logout_by_post_revokes_every_token_of_the_user(api, mailbox):
    first = await verified_user(api, mailbox)
    second = (await api.post(f"{ACCOUNTS}/login/", {"email": "ann@example.com", "password": PASSWORD})).data[
        "token"
    ]
    assert (await api.post(f"{ACCOUNTS}/logout/", token=second)).code == 200
    assert (await api.get(f"{ACCOUNTS}/users/me/", token=first)).code == 401


async def test_logout_without_a_token_is_401(api):
    assert (await api.post(f"{ACCOUNTS}/logout/")).code == 401


async def test_login_with_a_wrong_password_or_unknown_address_says_the_same(api, mailbox):
    await verified_user(api, mailbox)
    wrong = await api.post(f"{ACCOUNTS}/login/", {"email": "ann@example.com", "password": "wrong password"})
    unknown = await api.post(f"{ACCOUNTS}/login/", {"email": "nobody@example.com", "password": PASSWORD})
    assert wrong.code == unknown.code == 401
    assert wrong.data == unknown.data == {"detail": "Unable to login with provided credentials."}


async def test_login_before_verification_says_not_verified(api):
    await signup(api)
    reply = await api.post(f"{ACCOUNTS}/login/", {"email": "ann@example.com", "password": PASSWORD})
    assert reply.code == 401
    assert reply.data == {"detail": "User account not verified."}


async def test_login_of_a_deactivated_user_says_not_active(api, mailbox, db):
    await verified_user(api, mailbox)
    await db.users.update_one({"email_lower": "ann@example.com"}, {"$set": {"is_active": False}})
    reply = await api.post(f"{ACCOUNTS}/login/", {"email": "ann@example.com", "password": PASSWORD})
    assert reply.code == 401
    assert reply.data == {"detail": "User account not active."}


async def test_login_records_last_login(api, mailbox, db):
    await verified_user(api, mailbox)
    assert (await db.users.find_one({}))["last_login"] is not None


async def test_login_with_missing_fields_is_400(api):
    reply = await api.post(f"{ACCOUNTS}/login/", {"email": "ann@example.com"})
    assert reply.code == 400
    assert reply.data == {"password": ["This field is required."]}


async def test_tokens_and_passwords_are_stored_only_as_hashes(api, mailbox, db):
    token = await verified_user(api, mailbox)
    tokens = await db.tokens.find({}).to_list(None)
    assert tokens and all(token not in str(doc) for doc in tokens)
    user = await db.users.find_one({})
    assert PASSWORD not in str(user)
    assert user["password"].startswith("bcrypt_sha256$$2b$")


async def test_a_token_dies_after_the_configured_lifetime(api, mailbox, services, clock):
    services.accounts.settings.token_lifetime_s = 60
    token = await verified_user(api, mailbox)
    assert (await api.get(f"{ACCOUNTS}/users/me/", token=token)).code == 200
    clock.advance(seconds=61)
    assert (await api.get(f"{ACCOUNTS}/users/me/", token=token)).code == 401


async def test_passwords_longer_than_72_bytes_work_and_differ_after_byte_72(api, mailbox):
    long_password = "x" * 72 + "-the-rest-matters"
    await verified_user(api, mailbox, password=long_password)
    same_prefix = "x" * 72 + "-something-else"
    wrong = await api.post(f"{ACCOUNTS}/login/", {"email": "ann@example.com", "password": same_prefix})
    assert wrong.code == 401
    right = await api.post(f"{ACCOUNTS}/login/", {"email": "ann@example.com", "password": long_password})
    assert right.code == 200


async def test_a_very_long_unicode_password_is_no_500(api, mailbox):
    await verified_user(api, mailbox, password="ü" * 500)
    reply = await api.post(f"{ACCOUNTS}/login/", {"email": "ann@example.com", "password": "ü" * 500})
    assert reply.code == 200


# --- password reset ---------------------------------------------------------------------------------


async def test_password_reset_flow_revokes_old_tokens_and_the_new_password_works(api, mailbox):
    old_token = await verified_user(api, mailbox)
    reply = await api.post(f"{ACCOUNTS}/password/reset/", {"email": "ann@example.com"})
    assert reply.code == 201
    assert reply.data == {"email": "ann@example.com"}
    mail = (await mailbox.wait_for("ann@example.com", count=3))[-1]
    assert link_in(mail).startswith("http://localhost:4200/password/reset/verify?code=")
    code = code_in(mail)

    check = await api.get(f"{ACCOUNTS}/password/reset/verify/?code={code}")
    assert check.code == 200
    assert check.data == {"success": "Email address verified."}
    done = await api.post(
        f"{ACCOUNTS}/password/reset/verified/", {"code": code, "password": "a new password"}
    )
    assert done.code == 200
    assert done.data == {"success": "Password reset."}

    assert (await api.get(f"{ACCOUNTS}/users/me/", token=old_token)).code == 401
    old = await api.post(f"{ACCOUNTS}/login/", {"email": "ann@example.com", "password": PASSWORD})
    assert old.code == 401
    new = await api.post(f"{ACCOUNTS}/login/", {"email": "ann@example.com", "password": "a new password"})
    assert new.code == 200


async def test_a_reset_code_dies_once_used(api, mailbox):
    await verified_user(api, mailbox)
    await api.post(f"{ACCOUNTS}/password/reset/", {"email": "ann@example.com"})
    code = code_in((await mailbox.wait_for("ann@example.com", count=3))[-1])
    body = {"code": code, "password": "a new password"}
    assert (await api.post(f"{ACCOUNTS}/password/reset/verified/", body)).code == 200
    again = await api.post(f"{ACCOUNTS}/password/reset/verified/", {**body, "password": "a third password"})
    assert again.code == 400
    assert again.data == {"detail": "Unable to verify user."}
    assert (await api.get(f"{ACCOUNTS}/password/reset/verify/?code={code}")).code == 400


async def test_a_reset_code_dies_once_the_password_changes_by_another_route(api, mailbox):
    token = await verified_user(api, mailbox)
    await api.post(f"{ACCOUNTS}/password/reset/", {"email": "ann@example.com"})
    code = code_in((await mailbox.wait_for("ann@example.com", count=3))[-1])
    await api.post(f"{ACCOUNTS}/password/change/", {"password": "changed password"}, token=token)
    assert (await api.get(f"{ACCOUNTS}/password/reset/verify/?code={code}")).code == 400


async def test_an_expired_reset_code_is_refused(api, mailbox, clock):
    await verified_user(api, mailbox)
    await api.post(f"{ACCOUNTS}/password/reset/", {"email": "ann@example.com"})
    code = code_in((await mailbox.wait_for("ann@example.com", count=3))[-1])
    clock.advance(hours=1, seconds=1)
    reply = await api.post(
        f"{ACCOUNTS}/password/reset/verified/", {"code": code, "password": "a new password"}
    )
    assert reply.code == 400


async def test_password_reset_of_an_unknown_address_answers_the_same_and_mails_nobody(api, mailbox, db):
    reply = await api.post(f"{ACCOUNTS}/password/reset/", {"email": "nobody@example.com"})
    assert reply.code == 201
    assert reply.data == {"email": "nobody@example.com"}
    assert await db.outbox.count_documents({}) == 0


async def test_password_reset_mails_nobody_for_an_unverified_user(api, mailbox, db):
    await signup(api)
    await mailbox.wait_for("ann@example.com")
    reply = await api.post(f"{ACCOUNTS}/password/reset/", {"email": "ann@example.com"})
    assert reply.code == 201
    assert await db.outbox.count_documents({"template": "password_reset"}) == 0


async def test_password_reset_with_a_bad_address_is_a_field_error(api):
    reply = await api.post(f"{ACCOUNTS}/password/reset/", {"email": "nope"})
    assert reply.code == 400
    assert reply.data == {"email": ["Enter a valid email address."]}


async def test_password_reset_verified_checks_the_new_password(api):
    reply = await api.post(f"{ACCOUNTS}/password/reset/verified/", {"code": "x", "password": "short"})
    assert reply.code == 400
    assert reply.data == {"password": ["Ensure this field has at least 8 characters."]}


# --- password and e-mail change ---------------------------------------------------------------------


async def test_password_change_keeps_this_token_and_revokes_the_others(api, mailbox):
    first = await verified_user(api, mailbox)
    second = (await api.post(f"{ACCOUNTS}/login/", {"email": "ann@example.com", "password": PASSWORD})).data[
        "token"
    ]
    reply = await api.post(f"{ACCOUNTS}/password/change/", {"password": "brand new password"}, token=second)
    assert reply.code == 200
    assert reply.data == {"success": "Password changed."}
    assert (await api.get(f"{ACCOUNTS}/users/me/", token=second)).code == 200
    assert (await api.get(f"{ACCOUNTS}/users/me/", token=first)).code == 401
    login = await api.post(
        f"{ACCOUNTS}/login/", {"email": "ann@example.com", "password": "brand new password"}
    )
    assert login.code == 200


async def test_password_change_needs_a_token_and_a_valid_password(api, mailbox):
    assert (await api.post(f"{ACCOUNTS}/password/change/", {"password": "brand new password"})).code == 401
    token = await verified_user(api, mailbox)
    reply = await api.post(f"{ACCOUNTS}/password/change/", {}, token=token)
    assert reply.code == 400
    assert reply.data == {"password": ["This field is required."]}


async def test_email_change_mails_the_new_address_a_code_and_the_old_one_a_notice(api, mailbox):
    token = await verified_user(api, mailbox)
    reply = await api.post(f"{ACCOUNTS}/email/change/", {"email": "ann.new@example.com"}, token=token)
    assert reply.code == 201
    assert reply.data == {"email": "ann.new@example.com"}
    [confirm] = await mailbox.wait_for("ann.new@example.com")
    notice = (await mailbox.wait_for("ann@example.com", count=3))[-1]
    assert link_in(confirm).startswith("http://localhost:4200/email/change/verify?code=")
    assert "ann.new@example.com" in text_of(notice)
    assert "code=" not in text_of(notice)

    done = await api.get(f"{ACCOUNTS}/email/change/verify/?code={code_in(confirm)}")
    assert done.code == 200
    assert done.data == {"success": "Email address changed."}
    me = await api.get(f"{ACCOUNTS}/users/me/", token=token)
    assert me.data["email"] == "ann.new@example.com"
    new_login = await api.post(f"{ACCOUNTS}/login/", {"email": "ann.new@example.com", "password": PASSWORD})
    assert new_login.code == 200
    old_login = await api.post(f"{ACCOUNTS}/login/", {"email": "ann@example.com", "password": PASSWORD})
    assert old_login.code == 401
    assert (await api.get(f"{ACCOUNTS}/email/change/verify/?code={code_in(confirm)}")).code == 400


async def test_email_change_to_a_taken_address_is_refused(api, mailbox):
    await verified_user(api, mailbox, email="bob@example.com")
    token = await verified_user(api, mailbox)
    reply = await api.post(f"{ACCOUNTS}/email/change/", {"email": "Bob@example.com"}, token=token)
    assert reply.code == 400
    assert reply.data == {"detail": "Email address already taken."}


async def test_email_change_code_fails_if_the_address_was_taken_meanwhile(api, mailbox):
    token = await verified_user(api, mailbox)
    await api.post(f"{ACCOUNTS}/email/change/", {"email": "bob@example.com"}, token=token)
    [confirm] = await mailbox.wait_for("bob@example.com")
    assert (await signup(api, "bob@example.com")).code == 201
    bobs_signup = (await mailbox.wait_for("bob@example.com", count=2))[-1]
    assert (await api.get(f"{ACCOUNTS}/signup/verify/?code={code_in(bobs_signup)}")).code == 200
    reply = await api.get(f"{ACCOUNTS}/email/change/verify/?code={code_in(confirm)}")
    assert reply.code == 400
    assert reply.data == {"detail": "Email address already taken."}


async def test_email_change_needs_a_token(api):
    assert (await api.post(f"{ACCOUNTS}/email/change/", {"email": "x@example.com"})).code == 401


# --- mail delivery -----------------------------------------------------------------------------------


async def test_smtp_down_never_fails_a_request_and_the_mail_arrives_once_it_is_back(
    api, mailbox, services, clock, db
):
    mailbox.stop()
    reply = await signup(api)
    assert reply.code == 201
    for _ in range(100):
        doc = await db.jobs.find_one({"type": "mail"})
        if doc and doc["attempts"] == 1 and doc["state"] == "queued":
            break
        await asyncio.sleep(0.02)
    assert doc["last_error"]
    await services.queue.stop()
    mailbox.start()
    clock.advance(seconds=2)
    assert await run_due(services.queue) == 1
    [mail] = await mailbox.wait_for("ann@example.com")
    await asyncio.sleep(0.2)
    assert len(mailbox.to("ann@example.com")) == 1
    assert (await api.get(f"{ACCOUNTS}/signup/verify/?code={code_in(mail)}")).code == 200
    sent = await db.jobs.find_one({"_id": doc["_id"]})
    assert sent["state"] == "done"
    assert "text" not in sent["payload"] and "html" not in sent["payload"]


async def test_a_mail_that_keeps_failing_is_marked_failed_with_the_reason(api, mailbox, services, clock, db):
    mailbox.stop()
    await services.queue.stop()
    await signup(api)
    for _ in range(5):
        await run_due(services.queue)
        clock.advance(minutes=10)
    doc = await db.jobs.find_one({"type": "mail"})
    assert doc["state"] == "failed"
    assert doc["attempts"] == 3
    assert "Connect" in doc["last_error"] or "refused" in doc["last_error"].lower()
    assert "text" in doc["payload"]  # kept, so staff can send it again


async def test_a_mail_whose_sender_died_mid_send_is_sent_after_its_lease(services, db, clock, mailbox):
    queue = services.queue
    await queue.stop()
    await services.mailer.send("welcome", "x@example.com", {"name": "X", "link": "http://localhost:4200/"})
    # Another process claimed it, then died without a word.
    assert await queue.jobs.claim(["mail"], "elsewhere/1", "elsewhere", clock(), 120) is not None
    assert await run_due(queue) == 0
    clock.advance(seconds=121)
    assert await run_due(queue) == 1
    await mailbox.wait_for("x@example.com")


async def test_the_console_backend_prints_the_mail_decoded_with_each_link_whole(caplog):
    from services.mail import ConsoleBackend, Renderer, build_message

    link = "http://localhost:4200/signup/verify?code=" + "x" * 120
    mail = {
        "to": "ann@example.com",
        **Renderer().render("signup", {"name": "Ann", "link": link, "valid_for": "3 days", "again": False}),
    }
    with caplog.at_level("INFO", logger="videoflix.mail"):
        await ConsoleBackend().send(build_message(mail, "Videoflix <noreply@videoflix.local>"))
    assert "To: ann@example.com" in caplog.text
    assert any(link in line for line in caplog.text.splitlines())
    assert "=3D" not in caplog.text


async def test_no_token_password_or_code_reaches_the_log(api, mailbox):
    # What the server's own handler writes at DEBUG: on a real MongoDB that includes PyMongo's command
    # log, whose documents carry the mails queued with their links.
    stream = io.StringIO()
    handler = logs.log_handler("plain", stream)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        token = await verified_user(api, mailbox)
        await api.post(f"{ACCOUNTS}/password/reset/", {"email": "ann@example.com"})
        code = code_in((await mailbox.wait_for("ann@example.com", count=3))[-1])
        await api.get(f"{ACCOUNTS}/password/reset/verify/?code={code}")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    text = stream.getvalue()
    assert "/api/accounts/password/reset/verify/" in text  # the log was written
    assert token not in text
    assert code not in text
    assert PASSWORD not in text
