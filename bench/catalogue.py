"""Catalogue throughput: GET /api/videos/?limit=24 with 2,000 videos, and a 1 GB upload.

One server process on the embedded database (memory://), as `python server.py` runs it, is loaded by
wrk at 1, 16 and 64 connections. The baseline, measured in the same run, is the same server with the
list cache off (every request queries the database). The Django/DRF figures of TARGETS.md are printed
for reference. Then a 1 GB upload is streamed with curl; the server's throughput and peak RSS are shown.

    apt-get install wrk curl   # the load generators
    .venv/bin/python bench/catalogue.py [--seconds 5] [--videos 2000] [--upload-mb 1024]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import shutil
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import tornado.httpserver
import tornado.netutil
from bson import ObjectId

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import load_settings
from handlers.app import make_app
from models import ensure_indexes
from models.db import open_memory_database
from models.videos import new_video
from server import make_server
from services.container import build_services

from common import lavfi_clip, table

MIB = 1024 * 1024
DJANGO = (
    "Django 5.2 + DRF 3.16 + gunicorn/SQLite (TARGETS.md): ~300 req/s 1 worker, ~600 req/s 2; p99 71 ms @16"
)


async def start(
    media: Path, cache_ttl_s: float, videos: int
) -> tuple[tornado.httpserver.HTTPServer, str, str]:
    """A server as `python server.py` runs it on memory://, seeded; its URL, a user and a staff token."""
    settings = load_settings(
        None,
        environ={},
        overrides={
            "server": {"secret_key": "bench", "debug": False},
            "catalogue": {"cache_ttl_s": cache_ttl_s},
            "media": {"root": str(media), "max_upload_mb": 4096},
        },
    )
    db = open_memory_database("bench")
    await ensure_indexes(db)
    services = build_services(settings, db, run_types=(), node="bench")
    app = make_app(services)
    categories = [ObjectId() for _ in range(10)]
    await db.categories.insert_many(
        [
            {"_id": c, "name": f"C{n}", "slug": f"c{n}", "description": "", "created_at": services.clock()}
            for n, c in enumerate(categories)
        ]
    )
    docs = []
    for n in range(videos):
        doc = new_video(
            ObjectId(),
            f"Video {n}",
            f"Description of video {n}",
            categories[n % 10],
            "videos/x/source",
            None,
            services.clock(),
        )
        doc.update(
            status="ready",
            duration=600.0,
            width=1920,
            height=1080,
            hls_path=f"videos/{doc['_id']}/hls-1-abc/master.m3u8",
            thumbnail_path=f"videos/{doc['_id']}/hls-1-abc/thumbnail.jpg",
            renditions=[
                {"height": h, "width": h * 16 // 9, "bandwidth": h * 5000} for h in (120, 360, 720, 1080)
            ],
        )  # as the transcoder leaves a video: every answer carries freshly signed stream URLs
        docs.append(doc)
    if docs:
        await db.videos.insert_many(docs)
    busy = new_video(ObjectId(), "Being transcoded", "", None, "videos/y/source", None, services.clock())
    busy["status"] = "processing"
    await db.videos.insert_one(busy)
    asyncio.get_running_loop().create_task(report_progress(services, busy["_id"]))
    tokens = []
    for email, staff in (("viewer@example.com", False), ("staff@example.com", True)):
        user = await services.accounts.users.create(
            email, "x", services.clock(), is_verified=True, is_staff=staff
        )
        tokens.append(await services.accounts.issue_token(user))
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server = make_server(app, settings.server)
    server.add_sockets(sockets)
    return server, f"http://127.0.0.1:{sockets[0].getsockname()[1]}", tokens


async def report_progress(services, video_id: ObjectId) -> None:
    """What a running transcode does: progress writes a few times a second."""
    percent = 0
    while True:
        percent = (percent + 1) % 100
        await services.catalogue.videos.set_progress(video_id, percent, services.clock())
        await asyncio.sleep(0.25)


def parse_wrk(output: str) -> tuple[float, float, float]:
    """Requests/s, p50 and p99 in ms from `wrk --latency`."""

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", output).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    return rps, ms("50%"), ms("99%")


async def wrk(url: str, token: str, connections: int, seconds: int) -> tuple[float, float, float]:
    proc = await asyncio.create_subprocess_exec(
        "wrk",
        "--latency",
        "-t",
        str(min(connections, 2)),
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "-H",
        f"Authorization: Token {token}",
        url,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    return parse_wrk(out.decode())


def video_file(path: Path, megabytes: int) -> None:
    """A valid MP4 of about `megabytes`: a real clip, then a sparse 'free' box."""
    head = lavfi_clip(path.with_suffix(".small.mp4"), "320x240", 1, audio=False, faststart=True).read_bytes()
    padding = megabytes * MIB - len(head)
    with open(path, "wb") as out:
        out.write(head + struct.pack(">I", padding) + b"free")
        out.truncate(len(head) + padding)


async def upload(url: str, token: str, path: Path) -> tuple[float, float, int]:
    """Stream the file with curl; seconds, peak RSS growth in MB, HTTP status."""
    process = psutil.Process()
    before = process.memory_info().rss
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        f"Authorization: Token {token}",
        "-F",
        "title=Big upload",
        "-F",
        f"file=@{path};type=video/mp4",
        f"{url}/api/videos/",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    return elapsed, (peak[0] - before) / MIB, int(out or 0)


async def run(args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for label, ttl in (("videoflix (list cache on, shipped)", 2.0), ("baseline: same, cache off", 0.0)):
            server, url, (token, staff_token) = await start(Path(folder) / label[:4], ttl, args.videos)
            target = f"{url}/api/videos/?limit=24"
            await wrk(target, token, 4, 1)  # warm up
            for connections in (1, 16, 64):
                rps, p50, p99 = await wrk(target, token, connections, args.seconds)
                rows.append((label, connections, rps, p50, p99))
            server.stop()
        print(f"GET /api/videos/?limit=24, {args.videos} videos, one server process, memory://\n")
        print(table(["server", "connections", "req/s", "p50 ms", "p99 ms"], rows))
        ours = {r[1]: r for r in rows[:3]}
        base = {r[1]: r for r in rows[3:]}
        print(
            "\nratio cache on / off (req/s): "
            + ", ".join(f"{c} conn {ours[c][2] / base[c][2]:.1f}x" for c in (1, 16, 64))
        )
        print(f"reference: {DJANGO}")

        big = Path(folder) / "big.mp4"
        video_file(big, args.upload_mb)
        server, url, (token, staff_token) = await start(Path(folder) / "upload", 2.0, 0)
        seconds, growth, status = await upload(url, staff_token, big)
        server.stop()
        print(f"\nUpload of {args.upload_mb} MB through curl (multipart, loopback)\n")
        print(
            table(
                ["status", "seconds", "MB/s", "peak RSS growth MB"],
                [(status, seconds, args.upload_mb / seconds, growth)],
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--videos", type=int, default=2000)
    parser.add_argument("--upload-mb", type=int, default=1024)
    args = parser.parse_args()
    for tool in ("wrk", "curl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed: apt-get install {tool}")
    # Log as the server does (one line a request), to a file, so the figures include it.
    logging.basicConfig(
        level=logging.INFO, filename=tempfile.mktemp(prefix="videoflix-bench-", suffix=".log")
    )
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
