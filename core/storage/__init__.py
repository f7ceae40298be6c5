"""Where media bytes live: one backend a module (``local``: MEDIA_ROOT on disk; ``s3``: any S3-compatible
object store), all behind ``StorageBackend`` (``base``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.storage.base import (
    CACHE_CONTROL,
    CONTENT_TYPES,
    MediaStorage,
    ObjectMissing,
    StorageBackend,
    StorageUnavailable,
    check_key,
    check_prefix,
    content_type,
    file_chunks,
    files_below,
    fresh_prefix,
)
from core.storage.local import LocalStorage
from core.storage.s3 import S3Storage

__all__ = [
    "CACHE_CONTROL",
    "CONTENT_TYPES",
    "LocalStorage",
    "MediaStorage",
    "ObjectMissing",
    "S3Storage",
    "StorageBackend",
    "StorageUnavailable",
    "build_storage",
    "check_key",
    "check_prefix",
    "content_type",
    "file_chunks",
    "files_below",
    "fresh_prefix",
]


def build_storage(settings: Any, root: Path) -> StorageBackend:
    """The store the settings choose: `media.storage` local (MEDIA_ROOT, `root`) or s3 (the s3 section)."""
    if settings.media.storage == "s3":
        return S3Storage.from_settings(settings.s3)
    return LocalStorage(root)
