"""Rate limits on login, signup and password reset: per client address and per e-mail."""

from __future__ import annotations

import pytest

ACCOUNTS = "/api/accounts"


@pytest.fixture
def settings_overrides():
    return {
        "accounts": {
            "rate_limit_login": "3/60",
            "rate_limit_signup": "2/60",
            "rate_limit_password_reset": "2/60",
        },
        "server": {"trusted_proxies": ["127.0.0.1"]},
    }


def login(api, email="ann@example.com", client=None):
    headers = {"X-Forwarded-For": client} if client else {}
    return api.post(f"{ACCOUNTS}/login/", {"email": email, "password": "whatever1"}, headers=headers)


async def test_the_fourth_login_in_a_minute_gets_429_with_retry_after(api):
    for _ in range(3):
        assert (await login(api)).code == 401
    reply = await login(api)
    assert reply.code == 429
    assert 1 <= int(reply.headers["Retry-After"]) <= 60
    assert reply.data["detail"].startswith("Request was throttled.")


async def test_login_is_limited_per_address_across_e_mails(api):
    for n in range(3):
        await login(api, email=f"user{n}@example.com", client="203.0.113.9")
    assert (await login(api, email="other@example.com", client="203.0.113.9")).code == 429
    assert (await login(api, email="other@example.com", client="203.0.113.10")).code == 401


async def test_login_is_limited_per_e_mail_across_addresses(api):
    for n in range(3):
        await login(api, client=f"203.0.113.{n}")
    assert (await login(api, client="198.51.100.1")).code == 429


async def test_the_limit_lifts_when_the_window_ends(api, clock):
    for _ in range(4):
        await login(api)
    clock.advance(seconds=61)
    assert (await login(api)).code == 401


async def test_signup_and_password_reset_are_limited_too(api):
    for n in range(2):
        body = {"email": f"new{n}@example.com", "password": "long enough"}
        assert (await api.post(f"{ACCOUNTS}/signup/", body)).code == 201
    assert (
        await api.post(f"{ACCOUNTS}/signup/", {"email": "x@example.com", "password": "long enough"})
    ).code == 429
    for _ in range(2):
        assert (await api.post(f"{ACCOUNTS}/password/reset/", {"email": "r@example.com"})).code == 201
    assert (await api.post(f"{ACCOUNTS}/password/reset/", {"email": "r@example.com"})).code == 429


async def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(api, services):
    services.settings.server.trusted_proxies = []
    for n in range(3):
        await login(api, email=f"user{n}@example.com", client=f"203.0.113.{n}")
    # All came from 127.0.0.1 really: the fourth is limited whatever the header says.
    assert (await login(api, email="other@example.com", client="198.51.100.7")).code == 429


async def test_rate_limit_counters_store_no_address_or_e_mail_in_clear(api, db):
    await login(api, client="203.0.113.77")
    ids = " ".join(doc["_id"] for doc in await db.ratelimits.find({}).to_list(None))
    assert "203.0.113.77" not in ids and "ann@example.com" not in ids


def test_a_malformed_rate_limit_setting_stops_the_start():
    from core.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match=r"accounts\.rate_limit_login"):
        load_settings(None, environ={"SECRET_KEY": "k"}, overrides={"accounts": {"rate_limit_login": "ten"}})
