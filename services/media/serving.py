"""What `Media.locate` answers, and the reading of a ladder folder on local disk.

The stream handlers act on an answer and decide nothing: send a local file (Range, ETag), hand it to
nginx (X-Accel-Redirect), redirect to the edge (302), or send a text body (a rewritten playlist).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from core.storage import CONTENT_TYPES, cache_control, content_type

# A playlist that still grows (the video plays while it is transcoded) must be asked for again.
GROWING_PLAYLIST = "private, no-cache"
# The master playlist is the authorisation point: never kept by a shared cache.
AUTHORISING = "private, no-store"
# The media types a ladder's files are sent as (for the OpenAPI document).
MEDIA_TYPES = tuple(dict.fromkeys(media.split(";")[0] for media in CONTENT_TYPES.values()))


@dataclass(frozen=True)
class LocalFile:
    """A file on this machine: send it from `folder` (the ladder's) by its `name` below it."""

    folder: Path
    name: str
    content_type: str
    cache_control: str


@dataclass(frozen=True)
class InternalRedirect:
    """nginx sends the file from its internal location (X-Accel-Redirect), Range and all."""

    uri: str
    content_type: str
    cache_control: str


@dataclass(frozen=True)
class Redirect:
    """The edge serves the file at this URL (302)."""

    url: str


@dataclass(frozen=True)
class Body:
    """A text answer made here (a playlist rewritten for the edge)."""

    text: str
    content_type: str
    cache_control: str


Located = LocalFile | InternalRedirect | Redirect | Body


def private_cache_control(name: str, growing: bool) -> str:
    """What this server sends a file under one user's grant with."""
    if growing and name.endswith(".m3u8"):
        return GROWING_PLAYLIST
    return cache_control(name, shared=False) or "private, no-cache"


def local_answer(folder: Path, name: str, growing: bool, accel_prefix: str | None, root: Path) -> Located:
    """A file of a ladder folder on disk: to send here, or for nginx when it sends media itself."""
    control = private_cache_control(name, growing)
    if accel_prefix:
        relative = (folder / name).relative_to(root).as_posix()
        return InternalRedirect(accel_prefix.rstrip("/") + "/" + relative, content_type(name), control)
    return LocalFile(folder, name, content_type(name), control)


def ladder_file(folder: Path, name: str) -> Path | None:
    """folder/name if every part below the folder is a real directory or file, never a link out.

    `name` already matched LADDER_FILE (no '..', no absolute path), so only a symlink could lead
    elsewhere: lstat each part instead of resolving the whole path (two system calls, not a dozen).
    """
    path = folder
    parts = name.split("/")
    for index, part in enumerate(parts):
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return None
        wanted = stat.S_ISREG if index == len(parts) - 1 else stat.S_ISDIR
        if not wanted(mode):
            return None
    return path
