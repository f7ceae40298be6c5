"""Account pre-hijacking, replayed over HTTP in both orders: nothing an attacker holds from signing up
an address that is not theirs ever acts for the password of whoever verifies it."""

from __future__ import annotations

from tests.mailbox import code_in, text_of

ACCOUNTS = "/api/accounts"
VICTIM = "victim@example.com"
ATTACKER_PASSWORD = "attacker's own password"
OWNER_PASSWORD = "the owner's password"


async def signup(api, password: str) -> str:
    reply = await api.post(f"{ACCOUNTS}/signup/", {"email": VICTIM, "password": password})
    assert reply.code == 201
    return reply.data["token"]


async def verify(api, mail) -> object:
    return await api.get(f"{ACCOUNTS}/signup/verify/?code={code_in(mail)}")


async def assert_locked_out(api, token: str) -> None:
    """The attacker's token, password and every route it would use are refused."""
    me = await api.get(f"{ACCOUNTS}/users/me/", token=token)
    assert me.code == 401
    change = await api.post(f"{ACCOUNTS}/password/change/", {"password": "taken over!"}, token=token)
    assert change.code == 401
    login = await api.post(f"{ACCOUNTS}/login/", {"email": VICTIM, "password": ATTACKER_PASSWORD})
    assert login.code == 401
    assert login.data == {"detail": "Unable to login with provided credentials."}


async def test_an_attacker_who_signed_up_first_loses_the_account_once_the_owner_signs_up(api, mailbox):
    attacker_token = await signup(api, ATTACKER_PASSWORD)
    [attacker_mail] = await mailbox.wait_for(VICTIM)  # lands in the owner's mailbox, unread
    owner_token = await signup(api, OWNER_PASSWORD)
    owner_mail = (await mailbox.wait_for(VICTIM, count=2))[1]

    verified = await verify(api, owner_mail)
    assert verified.code == 200

    await assert_locked_out(api, attacker_token)
    me = await api.get(f"{ACCOUNTS}/users/me/", token=owner_token)
    assert (me.code, me.data["email"]) == (200, VICTIM)
    assert (await api.get(f"{ACCOUNTS}/users/me/", token=verified.data["token"])).code == 200
    login = await api.post(f"{ACCOUNTS}/login/", {"email": VICTIM, "password": OWNER_PASSWORD})
    assert login.code == 200
    # the link mailed for the attacker's signup can never verify it for them
    assert (await verify(api, attacker_mail)).data == {"detail": "Unable to verify user."}


async def test_an_attacker_token_stays_dead_even_if_the_attackers_link_came_first(api, mailbox):
    attacker_token = await signup(api, ATTACKER_PASSWORD)
    [attacker_mail] = await mailbox.wait_for(VICTIM)
    await signup(api, OWNER_PASSWORD)
    # the older link was revoked by the newer signup: it verifies nothing
    reply = await verify(api, attacker_mail)
    assert (reply.code, reply.data) == (400, {"detail": "Unable to verify user."})
    assert (await api.get(f"{ACCOUNTS}/users/me/", token=attacker_token)).code == 401


async def test_an_attacker_signing_up_after_the_owner_kills_the_owners_link_until_the_owner_signs_up_again(
    api, mailbox
):
    owner_first_token = await signup(api, OWNER_PASSWORD)
    [owner_first_mail] = await mailbox.wait_for(VICTIM)
    attacker_token = await signup(api, ATTACKER_PASSWORD)
    attacker_mail = (await mailbox.wait_for(VICTIM, count=2))[1]
    assert "signed up more than once" in text_of(attacker_mail)

    # what the owner held is dead: the attacker's signup replaced it
    assert (await verify(api, owner_first_mail)).code == 400
    assert (await api.get(f"{ACCOUNTS}/users/me/", token=owner_first_token)).code == 401

    # the owner signs up again, as the mail says, and verifies: the attacker is out for good
    owner_token = await signup(api, OWNER_PASSWORD)
    owner_mail = (await mailbox.wait_for(VICTIM, count=3))[2]
    assert (await verify(api, owner_mail)).code == 200
    await assert_locked_out(api, attacker_token)
    assert (await verify(api, attacker_mail)).code == 400
    assert (await api.get(f"{ACCOUNTS}/users/me/", token=owner_token)).code == 200


async def test_a_first_signup_mail_does_not_warn_about_a_repeated_signup(api, mailbox):
    await signup(api, OWNER_PASSWORD)
    [mail] = await mailbox.wait_for(VICTIM)
    assert "more than once" not in text_of(mail)


async def test_verification_revokes_tokens_that_the_verified_signup_did_not_issue(api, mailbox, services):
    """Even a token that slipped in under an earlier epoch (a race with the repeated signup) dies."""
    await signup(api, ATTACKER_PASSWORD)
    user = await services.accounts.users.by_email(VICTIM)
    stale = await services.accounts.tokens.issue(user.id, services.clock(), None, user.epoch)
    await signup(api, OWNER_PASSWORD)
    [_, owner_mail] = await mailbox.wait_for(VICTIM, count=2)
    assert (await verify(api, owner_mail)).code == 200
    assert await services.accounts.tokens.holder(stale, services.clock()) is None


async def test_an_admin_address_someone_signed_up_unverified_gets_the_operators_password(api, services):
    attacker_token = await signup(api, ATTACKER_PASSWORD)
    user, created = await services.accounts.ensure_superuser(VICTIM, OWNER_PASSWORD)
    assert (created, user.is_staff, user.is_verified) == (False, True, True)
    await assert_locked_out(api, attacker_token)
    login = await api.post(f"{ACCOUNTS}/login/", {"email": VICTIM, "password": OWNER_PASSWORD})
    assert login.code == 200


async def test_an_email_change_code_dies_once_the_password_changes(api, mailbox, user_token):
    """A code asked for with a stolen session stops working once the owner changes the password."""
    reply = await api.post(f"{ACCOUNTS}/email/change/", {"email": "thief@example.com"}, token=user_token)
    assert reply.code == 201
    [mail] = await mailbox.wait_for("thief@example.com")
    changed = await api.post(
        f"{ACCOUNTS}/password/change/", {"password": "a brand new one"}, token=user_token
    )
    assert changed.code == 200
    confirm = await api.get(f"{ACCOUNTS}/email/change/verify/?code={code_in(mail)}")
    assert (confirm.code, confirm.data) == (400, {"detail": "Unable to verify user."})
    assert (await api.get(f"{ACCOUNTS}/users/me/", token=user_token)).code == 200
