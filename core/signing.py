"""Signed, expiring codes (verification, reset) and grants, with itsdangerous."""

from __future__ import annotations

import hashlib
from typing import Any

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer

from core.clock import Clock, utcnow


class _ClockedSigner(TimestampSigner):
    """A timestamp signer that reads the injected clock, so tests move time instead of sleeping."""

    def __init__(self, *args: Any, clock: Clock, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock().timestamp())


class Signer:
    """Signs payloads per purpose: a code made for one purpose never passes for another."""

    def __init__(self, secret_key: str, clock: Clock = utcnow) -> None:
        self._secret_key = secret_key
        self._clock = clock
        self._serializers: dict[str, URLSafeTimedSerializer] = {}

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        serializer = self._serializers.get(purpose)
        if serializer is None:
            serializer = self._serializers[purpose] = URLSafeTimedSerializer(
                self._secret_key,
                salt=f"videoflix.{purpose}",
                signer=_ClockedSigner,
                signer_kwargs={"clock": self._clock, "digest_method": hashlib.sha256},
            )
        return serializer

    def dumps(self, purpose: str, payload: Any) -> str:
        """A URL-safe signed code carrying the payload and the time it was made."""
        return self._serializer(purpose).dumps(payload)

    def loads(self, purpose: str, code: str, max_age_s: int) -> Any | None:
        """The payload of a good code younger than max_age_s; None for a forged, truncated or old one."""
        if not isinstance(code, str) or not code or len(code) > 2048:
            return None
        try:
            return self._serializer(purpose).loads(code, max_age=max_age_s)
        except (BadData, UnicodeError, ValueError):
            return None
