"""Media has one home: no module but the media module (and the backends, the settings and the
composition root that read them) knows where bytes live or who checks their URLs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ("services/media/", "core/storage/")
# Where the settings are read and the media module is built.
SETTINGS = ("core/config.py", "services/media/media.py")

BRANCHES = {
    "a store's local path": (re.compile(r"\blocal_path\("), MEDIA),
    "an edge's class": (re.compile(r"isinstance\([^)]*\b(S3Edge|NginxEdge)\b"), MEDIA),
    "an edge's kind": (re.compile(r"\.edge\s*[!=]=|\bedge\.kind\b"), SETTINGS),
    "the storage setting": (re.compile(r"\bstorage\s*[!=]=\s*[\"']|\bstorage\.kind\b"), SETTINGS),
    "a store's kind": (re.compile(r"\bkind\s*[!=]=\s*[\"'](s3|local|nginx|none)[\"']"), MEDIA),
    "the ladders' place": (re.compile(r"\bladders_in_store\b"), ("services/media/", "core/edge.py")),
}


def python_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [name for name in listed if not name.startswith("tests/") and (ROOT / name).is_file()]


def test_no_module_but_the_media_module_branches_on_the_backend_or_the_edge():
    found = []
    for name in python_files():
        text = (ROOT / name).read_text()
        for what, (pattern, allowed) in BRANCHES.items():
            if name.startswith(allowed):
                continue
            for number, line in enumerate(text.splitlines(), 1):
                if pattern.search(line):
                    found.append(f"{name}:{number}: {what}: {line.strip()}")
    assert found == []


TYPE_ROW = re.compile(r"[\"']\.m3u8[\"']\s*:\s*[\"']application/vnd\.apple\.mpegurl")


def test_the_media_types_are_written_once():
    tables = [name for name in python_files() if TYPE_ROW.search((ROOT / name).read_text())]
    assert tables == ["core/storage/base.py"]


def test_nothing_but_the_media_module_holds_the_store_or_the_edge():
    holders = [
        name
        for name in python_files()
        if re.search(r"\b(build_storage|build_edge|S3Edge|NginxEdge)\(", (ROOT / name).read_text())
        and not name.startswith(("services/media/", "core/storage/", "core/edge.py", "bench/"))
    ]
    assert holders == []
