"""Password hashing: bcrypt over a SHA-256 pre-hash, always off the IOLoop."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import bcrypt

SCHEME = "bcrypt_sha256$"


def prehash(password: str) -> bytes:
    """A fixed-length stand-in for the password: bcrypt reads 72 bytes at most, and no NUL."""
    return base64.b64encode(hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest())


def hash_password_sync(password: str, rounds: int) -> str:
    """The stored form of a password (runs for ~0.25 s at cost 12: call it in an executor)."""
    digest = bcrypt.hashpw(prehash(password), bcrypt.gensalt(rounds))
    return SCHEME + digest.decode("ascii")


def check_password_sync(password: str, stored: str) -> bool:
    """True when the password matches the stored form."""
    if not stored or not stored.startswith(SCHEME):
        return False
    try:
        return bcrypt.checkpw(prehash(password), stored[len(SCHEME) :].encode("ascii"))
    except ValueError:
        return False


class PasswordHasher:
    """Hashes and checks passwords on a small thread pool (bcrypt releases the GIL)."""

    def __init__(self, rounds: int, threads: int | None = None) -> None:
        self.rounds = rounds
        # One core stays free for the IOLoop and the transcoders.
        workers = threads or max(1, (os.cpu_count() or 2) - 1)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bcrypt")
        # A real hash to check unknown users against, so that a miss takes as long as a hit.
        self._decoy: str | None = None

    async def hash(self, password: str) -> str:
        """The stored form of a password."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, hash_password_sync, password, self.rounds)

    async def check(self, password: str, stored: str | None) -> bool:
        """True when the password matches; with no stored hash, spends the same time and says False."""
        loop = asyncio.get_running_loop()
        if not stored:
            if self._decoy is None:
                self._decoy = await self.hash(os.urandom(16).hex())
            await loop.run_in_executor(self._pool, check_password_sync, password, self._decoy)
            return False
        return await loop.run_in_executor(self._pool, check_password_sync, password, stored)

    def close(self) -> None:
        """Stop the thread pool."""
        self._pool.shutdown(wait=False, cancel_futures=True)
