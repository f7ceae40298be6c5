"""Where media bytes live: one backend a module (``local``: MEDIA_ROOT on disk; ``s3``: any S3-compatible
object store), all behind ``StorageBackend`` (``base``). The media module (services/media) chooses one."""

from __future__ import annotations

from core.storage.base import (
    CONTENT_TYPES,
    ObjectMissing,
    StorageBackend,
    StorageUnavailable,
    cache_control,
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
    "CONTENT_TYPES",
    "LocalStorage",
    "ObjectMissing",
    "S3Storage",
    "StorageBackend",
    "StorageUnavailable",
    "cache_control",
    "check_key",
    "check_prefix",
    "content_type",
    "file_chunks",
    "files_below",
    "fresh_prefix",
]
