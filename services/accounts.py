"""The accounts service: the django-rest-authemail flows over users, tokens, codes and mail."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from core.clock import Clock, utcnow
from core.config import AccountSettings
from core.errors import Inactive, InvalidInput, NotFound, NotVerified, Unauthenticated
from core.passwords import PasswordHasher
from core.signing import Signer
from models.tokens import Tokens
from models.users import User, Users, at_epoch
from services.mail import Mailer

log = logging.getLogger("videoflix.accounts")

# Code purposes: each signs with its own salt, so no code passes for another.
SIGNUP, RESET, EMAIL_CHANGE = "signup", "password-reset", "email-change"

TAKEN = "Email address already taken."
UNABLE_TO_VERIFY = "Unable to verify user."
BAD_CREDENTIALS = "Unable to login with provided credentials."


def fingerprint(user: User, purpose: str) -> str:
    """A digest of the user's state that a code of this purpose must still match.

    It covers the password hash, the e-mail, the verified flag and the credentials epoch, so a signup
    code dies once the address is verified or signed up again, a reset code once the password changes
    by any route, and any code once the user logs out, changes or resets the password, or is
    deactivated.
    """
    state = "\x00".join(
        [purpose, user.password or "", user.email.lower(), str(user.is_verified), str(user.epoch)]
    )
    return hashlib.sha256(state.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def describe_age(seconds: int) -> str:
    """'3 days', '1 hour', '15 minutes': how long a link is valid, for mails."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


@dataclass
class Links:
    """Where mail links point: FRONTEND_URL + a path + ?code=."""

    frontend_url: str

    def build(self, path: str, code: str | None = None) -> str:
        base = self.frontend_url.rstrip("/") + "/" + path.lstrip("/")
        return f"{base}?code={code}" if code else base


class AccountService:
    """Users and tokens, with the rules that bind them."""

    def __init__(
        self,
        users: Users,
        tokens: Tokens,
        hasher: PasswordHasher,
        *,
        signer: Signer,
        mailer: Mailer,
        settings: AccountSettings,
        frontend_url: str,
        clock: Clock = utcnow,
    ) -> None:
        self.users = users
        self.tokens = tokens
        self.hasher = hasher
        self.clock = clock
        self.settings = settings
        self.signer = signer
        self.mailer = mailer
        self.links = Links(frontend_url)

    # --- tokens -------------------------------------------------------------------------------

    async def user_for_token(self, token: str) -> User | None:
        """The user a live token belongs to, or None: a token issued in an earlier credentials epoch
        (before a signup again, a logout, a password change or reset, a deactivation) is dead."""
        holder = await self.tokens.holder(token, self.clock())
        if holder is None:
            return None
        user_id, epoch = holder
        user = await self.users.get(user_id)
        return user if user is not None and user.epoch == epoch else None

    async def issue_token(self, user: User) -> str:
        """A new login token for the user, in its current credentials epoch."""
        return await self.tokens.issue(user.id, self.clock(), self.settings.token_lifetime_s, user.epoch)

    # --- codes --------------------------------------------------------------------------------

    def make_code(self, user: User, purpose: str, **extra: str) -> str:
        """A signed code for this user's current state."""
        return self.signer.dumps(purpose, {"u": user.id, "f": fingerprint(user, purpose), **extra})

    async def redeem(self, code: Any, purpose: str, max_age_s: int) -> tuple[User, dict[str, Any]]:
        """The user a code is for, if it is genuine, young enough and still matches the user's state."""
        payload = self.signer.loads(purpose, code, max_age_s) if isinstance(code, str) else None
        if not isinstance(payload, dict) or not isinstance(payload.get("u"), str):
            raise InvalidInput(UNABLE_TO_VERIFY)
        user = await self.users.get(payload["u"])
        if user is None or payload.get("f") != fingerprint(user, purpose):
            raise InvalidInput(UNABLE_TO_VERIFY)
        return user, payload

    async def mail(self, template: str, to: str, user: User, **context: Any) -> None:
        """Queue a mail for a user."""
        name = user.first_name or user.email.split("@")[0]
        await self.mailer.send(template, to, {"name": name, **context})

    # --- the flows ----------------------------------------------------------------------------

    async def signup(self, email: str, password: str, first_name: str, last_name: str) -> tuple[User, str]:
        """Create an unverified user (or refresh an unverified one) and mail the verify link."""
        password_hash = await self.hasher.hash(password)
        names: dict[str, Any] = {"first_name": first_name, "last_name": last_name}
        user = await self.users.create(email, password_hash, self.clock(), **names)
        again = user is None
        if user is None:
            existing = await self.users.by_email(email)
            if existing is None or existing.is_verified:
                raise InvalidInput(TAKEN)
            # An unverified address may sign up again: the newest password and link win, and
            # whoever signed up before loses every token and code (the address is not theirs yet,
            # so nothing they hold may ever act for the password of whoever verifies it).
            user = await self.users.update(
                existing.id, {"is_verified": False}, new_epoch=True, password=password_hash, **names
            )
            if user is None:
                raise InvalidInput(TAKEN)
            revoked = await self.tokens.revoke_all(user.id)
            log.info("unverified user %s signed up again; %d earlier token(s) revoked", user.id, revoked)
        code = self.make_code(user, SIGNUP)
        await self.mail(
            "signup",
            user.email,
            user,
            link=self.links.build(self.settings.signup_verify_path, code),
            valid_for=describe_age(self.settings.verify_code_max_age_s),
            again=again,
        )
        return user, await self.issue_token(user)

    async def verify_signup(self, code: Any) -> str:
        """Mark the address verified (once) and return a token; only the tokens of the signup being
        verified live on."""
        user, _ = await self.redeem(code, SIGNUP, self.settings.verify_code_max_age_s)
        if user.is_verified:
            raise InvalidInput(UNABLE_TO_VERIFY)
        # Only if no signup came in between: the code is for this epoch's password.
        verified = await self.users.update(
            user.id, {"is_verified": False, **at_epoch(user.epoch)}, is_verified=True
        )
        if verified is None:  # another request verified it first, or the address signed up again
            raise InvalidInput(UNABLE_TO_VERIFY)
        await self.tokens.revoke_other_epochs(verified.id, verified.epoch)
        await self.mail("welcome", verified.email, verified, link=self.links.build("/"))
        return await self.issue_token(verified)

    async def login(self, email: str, password: str) -> str:
        """A token for the right password of a verified, active user."""
        user = await self.users.by_email(email)
        if not await self.hasher.check(password, user.password if user else None) or user is None:
            raise Unauthenticated(BAD_CREDENTIALS)
        if not user.is_verified:
            raise NotVerified()
        if not user.is_active:
            raise Inactive()
        await self.users.update(user.id, last_login=self.clock())
        return await self.issue_token(user)

    async def logout(self, user: User) -> None:
        """Revoke every token and stream grant of the user."""
        await self.users.update(user.id, new_epoch=True)
        await self.tokens.revoke_all(user.id)

    async def request_password_reset(self, email: str) -> None:
        """Mail a reset link to a verified, active user; say nothing either way."""
        user = await self.users.by_email(email)
        if user is None or not user.is_verified or not user.is_active:
            log.info("password reset asked for an address with no active account")
            return
        code = self.make_code(user, RESET)
        await self.mail(
            "password_reset",
            user.email,
            user,
            link=self.links.build(self.settings.password_reset_verify_path, code),
            valid_for=describe_age(self.settings.reset_code_max_age_s),
        )

    async def resend_signup(self, email: str) -> None:
        """Mail a fresh verify link to an unverified, active address; say nothing either way.

        Nothing moves: no epoch, no token, no code of the owner's is revoked (the earlier link keeps
        working), since whoever asks need not be the owner; the new link is for the password chosen at
        the latest signup, as the earlier one was.
        """
        user = await self.users.by_email(email)
        if user is None or user.is_verified or not user.is_active:
            log.info("verify mail asked again for an address with no account waiting")
            return
        code = self.make_code(user, SIGNUP)
        await self.mail(
            "signup",
            user.email,
            user,
            link=self.links.build(self.settings.signup_verify_path, code),
            valid_for=describe_age(self.settings.verify_code_max_age_s),
            again=False,
        )

    async def check_reset_code(self, code: Any) -> None:
        """Raise unless the reset code is still good."""
        user, _ = await self.redeem(code, RESET, self.settings.reset_code_max_age_s)
        if not user.is_active:
            raise InvalidInput(UNABLE_TO_VERIFY)

    async def reset_password(self, code: Any, password: str) -> None:
        """Set a new password with a reset code; the code dies and every token is revoked."""
        user, _ = await self.redeem(code, RESET, self.settings.reset_code_max_age_s)
        if not user.is_active:
            raise InvalidInput(UNABLE_TO_VERIFY)
        password_hash = await self.hasher.hash(password)
        # Only if the password is still the one the code was made for: a code is spent once.
        spent = await self.users.update(
            user.id, {"password": user.password}, new_epoch=True, password=password_hash
        )
        if spent is None:
            raise InvalidInput(UNABLE_TO_VERIFY)
        await self.tokens.revoke_all(user.id)

    async def change_password(self, user: User, password: str, current_token: str) -> None:
        """Set a new password; every other token and every stream grant of the user is revoked."""
        changed = await self.users.update(user.id, new_epoch=True, password=await self.hasher.hash(password))
        if changed is None:
            raise NotFound()
        await self.tokens.move_to_epoch(current_token, changed.epoch)
        await self.tokens.revoke_all(user.id, keep=current_token)

    async def request_email_change(self, user: User, new_email: str) -> None:
        """Mail a code to the new address and a notice to the old one."""
        other = await self.users.by_email(new_email)
        if other is not None and (other.id == user.id or other.is_verified):
            raise InvalidInput(TAKEN)
        code = self.make_code(user, EMAIL_CHANGE, e=new_email)
        link = self.links.build(self.settings.email_change_verify_path, code)
        valid_for = describe_age(self.settings.verify_code_max_age_s)
        await self.mail("email_change", new_email, user, link=link, new_email=new_email, valid_for=valid_for)
        await self.mail("email_change_notice", user.email, user, new_email=new_email)

    async def confirm_email_change(self, code: Any) -> None:
        """Move the user to the new address, if it is still free."""
        user, payload = await self.redeem(code, EMAIL_CHANGE, self.settings.verify_code_max_age_s)
        new_email = payload.get("e")
        if not isinstance(new_email, str):
            raise InvalidInput(UNABLE_TO_VERIFY)
        other = await self.users.by_email(new_email)
        if other is not None and other.id != user.id:
            if other.is_verified:
                raise InvalidInput(TAKEN)
            await self.users.delete_unverified(other.id)  # an abandoned signup does not block it
        if await self.users.change_email(user.id, user.email, new_email) is None:
            raise InvalidInput(UNABLE_TO_VERIFY)

    async def ensure_superuser(self, email: str, password: str) -> tuple[User, bool]:
        """A verified, active staff user with this e-mail: created, or promoted if it exists.

        An existing verified user's password is left as it is. An unverified one gets this password
        and loses every earlier token and code: whoever signed up with the address never proved it
        theirs. Returns the user and whether it was created.
        """
        existing = await self.users.by_email(email)
        if existing is None:
            created = await self.users.create(
                email, await self.hasher.hash(password), self.clock(), is_verified=True, is_staff=True
            )
            if created is not None:
                return created, True
            existing = await self.users.by_email(email)  # another process created it meanwhile
            assert existing is not None
        if existing.is_staff and existing.is_verified and existing.is_active:
            return existing, False
        fields: dict[str, Any] = {"is_staff": True, "is_verified": True, "is_active": True}
        if not existing.is_verified:
            fields["password"] = await self.hasher.hash(password)
        updated = await self.users.update(existing.id, new_epoch=not existing.is_verified, **fields)
        assert updated is not None
        if not existing.is_verified:
            await self.tokens.revoke_all(updated.id)
        return updated, False

    # --- for staff ----------------------------------------------------------------------------

    async def page_users(self, search: tuple[str, ...], offset: int, limit: int) -> tuple[list[User], int]:
        """Users by e-mail, filtered by words in the e-mail or names."""
        return await self.users.page(search, offset, limit)

    async def delete_user(self, user_id: str) -> None:
        """Remove a user and every token of theirs (what else they left, the caller removes)."""
        if not await self.users.delete(user_id):
            raise NotFound()
        await self.tokens.revoke_all(user_id)

    async def set_flags(self, user_id: str, *, is_staff: bool | None, is_active: bool | None) -> User:
        """Make a user staff or not, active or not; deactivating revokes its tokens and ends its
        credentials epoch, so its stream grants die for good (reactivation brings none back)."""
        if await self.users.get(user_id) is None:
            raise NotFound()
        fields: dict[str, Any] = {
            name: value
            for name, value in (("is_staff", is_staff), ("is_active", is_active))
            if value is not None
        }
        deactivating = is_active is False
        user = (
            await self.users.update(user_id, new_epoch=deactivating, **fields)
            if fields
            else await self.users.get(user_id)
        )
        if user is None:
            raise NotFound()
        if deactivating:
            revoked = await self.tokens.revoke_all(user.id)
            log.info("user %s deactivated; %d token(s) revoked", user.id, revoked)
        return user
