"""POST /api/accounts/signup/resend/: a fresh verify mail, the same answer for every address."""

from __future__ import annotations

import pytest

from tests.mailbox import code_in

ACCOUNTS = "/api/accounts"
PASSWORD = "a-long-password"


@pytest.fixture
def settings_overrides():
    return {"accounts": {"rate_limit_signup_resend": "2/60"}, "server": {"trusted_proxies": ["127.0.0.1"]}}


def resend(api, email, client="203.0.113.1"):
    return api.post(f"{ACCOUNTS}/signup/resend/", {"email": email}, headers={"X-Forwarded-For": client})


async def test_an_unverified_address_gets_a_fresh_link_and_the_first_keeps_working(api, mailbox):
    signup = await api.post(f"{ACCOUNTS}/signup/", {"email": "ann@example.com", "password": PASSWORD})
    assert signup.code == 201
    reply = await resend(api, "ann@example.com")
    assert reply.code == 200
    first, second = await mailbox.wait_for("ann@example.com", count=2)
    assert "signed up more than once" not in second.get_body(preferencelist=("plain",)).get_content()
    # nothing the owner holds was revoked: the first link verifies, and the signup's token then works
    assert (await api.get(f"{ACCOUNTS}/signup/verify/?code={code_in(first)}")).code == 200
    assert (await api.get(f"{ACCOUNTS}/users/me/", token=signup.data["token"])).code == 200
    # ... and the second link, for the same signup, is spent with it
    assert (await api.get(f"{ACCOUNTS}/signup/verify/?code={code_in(second)}")).code == 400


async def test_the_answer_is_the_same_for_unknown_verified_and_unverified_addresses(
    api, mailbox, services, user_token
):
    await api.post(f"{ACCOUNTS}/signup/", {"email": "ann@example.com", "password": PASSWORD})
    answers = [
        await resend(api, email, client=f"203.0.113.{n}")
        for n, email in enumerate(["ann@example.com", "nobody@example.com", "viewer@example.com"])
    ]
    assert {(reply.code, reply.body) for reply in answers} == {(answers[0].code, answers[0].body)}
    assert answers[0].code == 200
    await mailbox.wait_for("ann@example.com", count=2)
    assert mailbox.to("nobody@example.com") == []
    assert mailbox.to("viewer@example.com") == []


async def test_resend_is_limited_per_address_and_per_client(api):
    for n in range(2):
        assert (await resend(api, "ann@example.com", client=f"198.51.100.{n}")).code == 200
    limited = await resend(api, "ann@example.com", client="198.51.100.9")
    assert limited.code == 429
    assert "Retry-After" in limited.headers
    for n in range(2):
        await resend(api, f"user{n}@example.com", client="192.0.2.1")
    assert (await resend(api, "other@example.com", client="192.0.2.1")).code == 429


@pytest.mark.parametrize("body", [{}, {"email": "not an address"}, {"email": 3}])
async def test_a_bad_address_is_a_field_error(api, body):
    reply = await api.post(f"{ACCOUNTS}/signup/resend/", body)
    assert reply.code == 400
    assert "email" in reply.data
