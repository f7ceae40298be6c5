"""Media has one home: keys, backend and edge, scratch, live mirroring, publish, delete, `locate`."""

from services.media.media import (
    Ladder,
    Media,
    ScratchMissing,
    build_edge,
    build_media,
    build_storage,
    media_root,
    remove_tree,
)
from services.media.serving import (
    MEDIA_TYPES,
    Body,
    InternalRedirect,
    LocalFile,
    Located,
    Redirect,
)

__all__ = [
    "MEDIA_TYPES",
    "Body",
    "InternalRedirect",
    "Ladder",
    "LocalFile",
    "Located",
    "Media",
    "Redirect",
    "ScratchMissing",
    "build_edge",
    "build_media",
    "build_storage",
    "media_root",
    "remove_tree",
]
