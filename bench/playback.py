"""Playback sessions under load: 200 players sending a heartbeat every 10 s, against the real server.

A server process on the embedded database (memory://), seeded as bench/catalogue.py seeds it (2,000
ready videos) plus one user per player, is measured idle and then while the players report: each
player sends `start` and then one heartbeat per 10 s of playback, with time compressed `--speedup`
times (default 5: a heartbeat every 2 s, so 200 players send 100 reports a second, five times the real
rate). Measured in each state: `GET /api/health/` one request at a time (p50/p99), and
`GET /api/videos/?limit=24` under wrk at 16 connections. As in bench/catalogue.py, the baseline is the
same server with the list cache off, measured in the same run; the catalogue ratio is cache on / off.

    apt-get install wrk
    .venv/bin/python bench/playback.py [--sessions 200] [--speedup 5] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import percentile, summary, table

HEARTBEAT_S = 10


# --- the server process -------------------------------------------------------------------------


async def serve(videos: int, users: int, cache_ttl_s: float, out: Path) -> None:
    """Run a seeded server until killed; write its URL, tokens and video ids to `out`."""
    import tornado.netutil
    from bson import ObjectId

    from core.config import load_settings
    from handlers.app import make_app
    from models import ensure_indexes
    from models.db import open_memory_database
    from models.videos import new_video
    from server import make_server
    from services.container import build_services

    media = Path(tempfile.mkdtemp(prefix="videoflix-bench-"))
    settings = load_settings(
        None,
        environ={},
        overrides={
            "server": {"secret_key": "bench", "debug": False},
            "catalogue": {"cache_ttl_s": cache_ttl_s},
            "media": {"root": str(media)},
        },
    )
    db = open_memory_database("bench")
    await ensure_indexes(db)
    services = build_services(settings, db, run_types=(), node="bench")
    docs = []
    for n in range(videos):
        doc = new_video(
            ObjectId(), f"Video {n}", f"Description {n}", None, "videos/x/source", None, services.clock()
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
        )
        docs.append(doc)
    await db.videos.insert_many(docs)
    tokens = []
    for n in range(users):
        user = await services.accounts.users.create(
            f"viewer{n}@example.com", "x", services.clock(), is_verified=True
        )
        tokens.append(await services.accounts.issue_token(user))
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server = make_server(make_app(services), settings.server)
    server.add_sockets(sockets)
    url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    out.write_text(json.dumps({"url": url, "tokens": tokens, "videos": [str(d["_id"]) for d in docs[:50]]}))
    print(f"listening on {url}", flush=True)
    await asyncio.Event().wait()


class Server:
    """This script with --serve in a process of its own (the players and probes must not share its loop)."""

    def __init__(self, videos: int, users: int, cache_ttl_s: float, folder: Path) -> None:
        info = folder / f"server-{cache_ttl_s}.json"
        args = [sys.executable, __file__, "--serve", str(info), "--videos", str(videos)]
        args += ["--sessions", str(users), "--cache-ttl", str(cache_ttl_s)]
        self.log = open(folder / f"server-{cache_ttl_s}.log", "w+")  # noqa: SIM115 (lives with the server)
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=os.environ)
        deadline = time.monotonic() + 120
        while not re.search("listening on", Path(self.log.name).read_text()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bench server did not start: {Path(self.log.name).read_text()}")
            time.sleep(0.1)
        data = json.loads(info.read_text())
        self.url, self.tokens, self.videos = data["url"], data["tokens"], data["videos"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


# --- the load -------------------------------------------------------------------------------------


class Players:
    """`count` players, each a session of its own user on one of the videos, reporting until stopped."""

    def __init__(self, server: Server, count: int, speedup: float) -> None:
        self.server, self.count, self.interval = server, count, HEARTBEAT_S / speedup
        self.client = AsyncHTTPClient(force_instance=True, max_clients=count)
        self.latencies: list[float] = []
        self.failures: dict[int, int] = {}
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self.play(n)) for n in range(self.count)]

    async def play(self, n: int) -> None:
        token, video = self.server.tokens[n], self.server.videos[n % len(self.server.videos)]
        session, seq, position = uuid.uuid4().hex, 0, 0.0
        await asyncio.sleep(random.uniform(0, self.interval))  # players do not start in step
        events: list[dict[str, object]] = [
            {"seq": 0, "type": "start", "startup_ms": random.randint(300, 2000)}
        ]
        while not self.stop.is_set():
            seq += 1
            position += HEARTBEAT_S
            events.append(
                {"seq": seq, "type": "heartbeat", "position": position, "rendition": "720p",
                 "codec": "avc1.64001f", "bitrate": 3_000_000, "played": HEARTBEAT_S}
            )  # fmt: skip
            body = json.dumps({"session": session, "events": events})
            started = time.perf_counter()
            try:
                await self.client.fetch(
                    f"{self.server.url}/api/videos/{video}/playback/",
                    method="POST",
                    body=body,
                    headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
                )
                self.latencies.append((time.perf_counter() - started) * 1000)
            except HTTPClientError as err:
                self.failures[err.code] = self.failures.get(err.code, 0) + 1
            events = []
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.interval)

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)
        self.client.close()


async def health(url: str, seconds: float) -> list[float]:
    """GET /api/health/ one at a time, every 20 ms, for `seconds`: latencies in ms."""
    client = AsyncHTTPClient(force_instance=True, max_clients=1)
    latencies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        await client.fetch(f"{url}/api/health/")
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.02)
    client.close()
    return latencies


async def wrk(url: str, token: str, seconds: int) -> tuple[float, float]:
    """GET /api/videos/?limit=24 at 16 connections: req/s and p99 ms."""
    proc = await asyncio.create_subprocess_exec(
        "wrk", "--latency", "-t", "2", "-c", "16", "-d", f"{seconds}s", "-H", f"Authorization: Token {token}",
        f"{url}/api/videos/?limit=24", stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out = (await proc.communicate())[0].decode()
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), p99  # type: ignore[union-attr]


def cpu_s(pid: int) -> float:
    """CPU seconds a process has used (user + system): what a request costs, whatever else the machine
    runs (wall times here move with the other processes on the box)."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def measure(
    server: Server, args: argparse.Namespace, label: str
) -> tuple[list[tuple[object, ...]], dict[str, float]]:
    rows: list[tuple[object, ...]] = []
    token = server.tokens[-1]
    await wrk(server.url, token, 1)  # warm the list cache
    await asyncio.sleep(1)  # let the warm-up's queue drain
    idle_health = await health(server.url, args.seconds)
    cpu = cpu_s(server.proc.pid)
    idle_rps, idle_p99 = await wrk(server.url, token, args.seconds)
    catalogue_cpu_ms = (cpu_s(server.proc.pid) - cpu) * 1000 / max(1.0, idle_rps * args.seconds)
    rows.append((label, "idle", *summary(idle_health)[:2], idle_rps, idle_p99, "-", "-"))

    players = Players(server, args.sessions, args.speedup)
    players.start()
    await asyncio.sleep(players.interval * 2)  # every player has started and reported
    reports_before, cpu = len(players.latencies), cpu_s(server.proc.pid)
    await asyncio.sleep(args.seconds)  # the players alone
    report_cpu_ms = (cpu_s(server.proc.pid) - cpu) * 1000 / max(1, len(players.latencies) - reports_before)
    loaded_health = await health(server.url, args.seconds)
    reports_before = len(players.latencies)
    loaded_rps, loaded_p99 = await wrk(server.url, token, args.seconds)
    reports = len(players.latencies) - reports_before
    await players.finish()
    rows.append(
        (
            label,
            f"{args.sessions} players",
            *summary(loaded_health)[:2],
            loaded_rps,
            loaded_p99,
            f"{reports / args.seconds:.0f}/s",
            f"{percentile(players.latencies, 99):.1f}",
        )
    )
    if players.failures:
        print(f"{label}: failed reports by status: {players.failures}")
    return rows, {"catalogue": catalogue_cpu_ms, "report": report_cpu_ms}


async def run(args: argparse.Namespace) -> None:
    rows: list[tuple[object, ...]] = []
    costs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as folder:
        for label, ttl in (("videoflix (cache on, shipped)", 2.0), ("baseline: cache off", 0.0)):
            server = Server(args.videos, args.sessions, ttl, Path(folder))
            try:
                measured, cost = await measure(server, args, label)
                rows += measured
                costs.append(cost)
            finally:
                server.stop()
    print(
        f"{args.sessions} players, a heartbeat every {HEARTBEAT_S} s / {args.speedup:g} "
        f"({args.sessions * args.speedup / HEARTBEAT_S:.0f} reports/s offered), {args.videos} videos, memory://\n"
    )
    headers = ["server", "load", "health p50 ms", "health p99 ms", "catalogue req/s @16", "catalogue p99 ms"]
    print(table([*headers, "reports", "report p99 ms"], rows))
    idle_ratio = rows[0][4] / rows[2][4]  # type: ignore[operator]
    loaded_ratio = rows[1][4] / rows[3][4]  # type: ignore[operator]
    print(f"\ncatalogue ratio cache on / off: idle {idle_ratio:.1f}x, under playback {loaded_ratio:.1f}x")
    print(f"health p99 under playback (shipped server): {rows[1][3]:.1f} ms (target < 25 ms)")
    shipped = costs[0]
    print(
        f"server CPU per request (shipped): catalogue GET {shipped['catalogue']:.2f} ms, playback report "
        f"{shipped['report']:.2f} ms ({shipped['report'] / shipped['catalogue']:.2f}x a catalogue GET); "
        f"{args.sessions} players at the real rate ({args.sessions / HEARTBEAT_S:.0f} reports/s) keep the "
        f"IOLoop {shipped['report'] * args.sessions / HEARTBEAT_S / 10:.1f} % busy"
    )
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--speedup", type=float, default=5.0)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--videos", type=int, default=2000)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache-ttl", type=float, default=2.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        import logging

        logging.basicConfig(level=logging.INFO, filename=str(args.serve) + ".access.log")
        asyncio.run(serve(args.videos, args.sessions, args.cache_ttl, args.serve))
        return
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
