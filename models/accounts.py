"""The accounts service: who a token belongs to, and the staff users that exist from the start."""

from __future__ import annotations

import logging

from core.clock import Clock, utcnow
from core.passwords import PasswordHasher
from models.db import Database
from models.tokens import Tokens
from models.users import User, Users

log = logging.getLogger("videoflix.accounts")


class AccountService:
    """Users and tokens, with the rules that bind them."""

    def __init__(
        self,
        db: Database,
        hasher: PasswordHasher,
        *,
        clock: Clock = utcnow,
        token_lifetime_s: int | None = None,
    ) -> None:
        self.users = Users(db)
        self.tokens = Tokens(db)
        self.hasher = hasher
        self.clock = clock
        self.token_lifetime_s = token_lifetime_s

    async def user_for_token(self, token: str) -> User | None:
        """The user a live token belongs to, or None."""
        user_id = await self.tokens.user_id_for(token, self.clock())
        return await self.users.get(user_id) if user_id else None

    async def ensure_superuser(self, email: str, password: str) -> tuple[User, bool]:
        """A verified, active staff user with this e-mail: created, or promoted if it exists.

        An existing user's password is left as it is. Returns the user and whether it was created.
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
        updated = await self.users.update(existing.id, is_staff=True, is_verified=True, is_active=True)
        assert updated is not None
        return updated, False
