"""Segment delivery: GETs of HLS segments through the server, against nginx serving the same files.

Transcodes a 720p clip with the pipeline, then loads one server process (wrk, 1/16/64 connections)
with GETs of its segments under a stream grant, and, in the same run, nginx (one worker) serving the
same files straight from disk, nginx in front of the server in X-Accel-Redirect mode (the server
checks the grant, nginx sends the bytes), and the recommended set-up (deploy/nginx/videoflix.conf.template:
nginx checks the secure_link token that core/edge.py makes and sends the file from disk, no Python).

    apt-get install wrk nginx
    .venv/bin/python bench/serve.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import tornado.netutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import load_settings
from core.edge import NginxEdge
from handlers.app import make_app
from models import ensure_indexes
from models.db import open_memory_database
from models.videos import Video
from server import make_server
from services.container import build_services
from tests.nginx import render

from common import lavfi_clip, table

NGINX_CONF = """
worker_processes 1;
daemon off;
user root;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; image/jpeg jpg; }}
    server {{
        listen 127.0.0.1:{direct_port};
        location /media/ {{ alias {media}/; }}
    }}
    upstream videoflix {{ server 127.0.0.1:{app_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{proxy_port};
        location / {{
            proxy_pass http://videoflix;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location /protected-media/ {{ internal; alias {media}/; }}
    }}
    include {prefix}/videoflix.conf;
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parse(output: str) -> tuple[float, float, float]:
    """req/s, MB/s and p99 ms from `wrk --latency`."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    value, unit = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", output).groups()
    mbps = float(value) * {"B": 1e-6, "KB": 1e-3, "MB": 1.0, "GB": 1e3}[unit] * 1.048576
    p99, p99_unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", output).groups()
    return rps, mbps, float(p99) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99_unit]


async def wrk(url: str, connections: int, seconds: int, script: Path) -> tuple[float, float, float]:
    proc = await asyncio.create_subprocess_exec(
        "wrk",
        "--latency",
        "-t",
        str(min(2, connections)),
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "-s",
        str(script),
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    if b"Requests/sec" not in out:
        raise RuntimeError(f"wrk failed: {out.decode()}")
    return parse(out.decode())


def rotate_script(path: Path, paths: list[str]) -> Path:
    """A wrk script that asks for each segment in turn."""
    listing = ", ".join(f'"{p}"' for p in paths)
    path.write_text(
        f"local paths = {{{listing}}}\nlocal i = 0\n"
        "request = function()\n  i = i % #paths + 1\n  return wrk.format('GET', paths[i])\nend\n"
    )
    return path


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        media = root / "media"
        source = root / "source.mp4"
        lavfi_clip(source, "1280x720", 16, bitrate="4M")
        settings = load_settings(
            None,
            environ={},
            overrides={
                "server": {"secret_key": "bench", "debug": False},
                "media": {"root": str(media)},
                "transcode": {"workers": 1},
                "jobs": {"poll_interval_s": 0.1},
            },
        )
        db = open_memory_database("bench")
        await ensure_indexes(db)
        services = build_services(settings, db, node="bench")
        app = make_app(services)
        user, _ = await services.accounts.ensure_superuser("bench@example.com", "bench-password")
        await services.start()
        result = await db.videos.insert_one(
            {"title": "bench", "status": "pending", "source": str(source), "created_at": services.clock()}
        )
        while (doc := await db.videos.find_one({"_id": result.inserted_id}))["status"] not in (
            "ready",
            "failed",
        ):
            await asyncio.sleep(0.1)
        await services.stop()
        folder_rel = Path(doc["hls_path"]).parent
        segments = sorted((media / folder_rel / "720p").glob("seg_*.ts"))
        sizes = [s.stat().st_size for s in segments]
        [shown] = await services.catalogue.serialize(user, [Video.from_doc(doc)])
        grant_base = shown.urls.hls_url.rsplit("/", 1)[0]

        app_port, direct_port, proxy_port, edge_port = free_port(), free_port(), free_port(), free_port()
        edge = NginxEdge("/media", "bench-edge-secret", 600)
        (root / "videoflix.conf").write_text(
            render(
                {
                    "EDGE_SECRET": edge.secret,
                    "MEDIA_ROOT": str(media),
                    "API_UPSTREAM": f"127.0.0.1:{app_port}",
                    "NGINX_LISTEN": f"127.0.0.1:{edge_port}",
                    "NGINX_CACHE_DIR": str(root / "cache"),
                }
            )
        )
        sockets = tornado.netutil.bind_sockets(app_port, "127.0.0.1")
        server = make_server(app, settings.server)
        server.add_sockets(sockets)
        (root / "nginx.conf").write_text(
            NGINX_CONF.format(
                prefix=root, media=media, app_port=app_port, direct_port=direct_port, proxy_port=proxy_port
            )
        )
        nginx = subprocess.Popen(["nginx", "-c", str(root / "nginx.conf"), "-p", str(root)])
        await asyncio.sleep(0.5)
        names = [f"720p/{s.name}" for s in segments]
        through_server = rotate_script(root / "server.lua", [f"{grant_base}/{n}" for n in names])
        from_disk = rotate_script(root / "nginx.lua", [f"/media/{folder_rel}/{n}" for n in names])
        signed = rotate_script(root / "edge.lua", [edge.url(str(folder_rel), n) for n in names])
        rows = []
        try:
            for connections in (1, 16, 64):
                settings.media.accel_redirect = None
                ours = await wrk(f"http://127.0.0.1:{app_port}", connections, args.seconds, through_server)
                direct = await wrk(f"http://127.0.0.1:{direct_port}", connections, args.seconds, from_disk)
                settings.media.accel_redirect = "/protected-media/"
                accel = await wrk(f"http://127.0.0.1:{proxy_port}", connections, args.seconds, through_server)
                checked = await wrk(f"http://127.0.0.1:{edge_port}", connections, args.seconds, signed)
                rows += [
                    ("videoflix (Tornado, 1 process)", connections, *ours, f"{ours[1] / direct[1]:.2f}"),
                    ("nginx from disk (1 worker)", connections, *direct, "1.00"),
                    ("nginx + X-Accel-Redirect", connections, *accel, f"{accel[1] / direct[1]:.2f}"),
                    ("nginx + secure_link (edge)", connections, *checked, f"{checked[1] / direct[1]:.2f}"),
                ]
        finally:
            nginx.terminate()
            nginx.wait()
            server.stop()
        print(
            f"GET of 720p HLS segments ({len(segments)} segments, {sum(sizes) / len(sizes) / 1e6:.2f} MB "
            f"average), wrk with 2 threads, {args.seconds} s each\n"
        )
        print(table(["server", "connections", "req/s", "MB/s", "p99 ms", "MB/s vs nginx"], rows))
        print(
            "\ntargets: the server >= 0.5x nginx direct; nginx + secure_link (edge tokens, no Python per "
            "request) >= 0.9x nginx direct"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed: apt-get install {tool}")
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
