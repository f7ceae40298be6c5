"""Does bcrypt block the IOLoop? Latency of GET /api/accounts/users/me/ with and without login load.

Starts `server.py` (in-memory database, bcrypt cost 12 as shipped) in its own process, then measures
`users/me/` one request at a time: first idle, then while N clients log in as fast as they can.

    .venv/bin/python bench/auth.py [--logins 16] [--samples 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient

from common import ServerProcess, summary, table

EMAIL, PASSWORD = "bench@example.com", "bench-password-123"


async def login(client: AsyncHTTPClient, url: str) -> str:
    body = json.dumps({"email": EMAIL, "password": PASSWORD})
    response = await client.fetch(
        f"{url}/api/accounts/login/", method="POST", body=body, headers={"Content-Type": "application/json"}
    )
    return json.loads(response.body)["token"]


async def me_latencies(client: AsyncHTTPClient, url: str, token: str, samples: int) -> list[float]:
    latencies = []
    for _ in range(samples):
        started = time.perf_counter()
        await client.fetch(f"{url}/api/accounts/users/me/", headers={"Authorization": f"Token {token}"})
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def hammer(client: AsyncHTTPClient, url: str, stop: asyncio.Event, done: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        await login(client, url)
        done.append((time.perf_counter() - started) * 1000)


async def run(url: str, logins: int, samples: int) -> None:
    # Separate clients, so that no users/me/ request waits in the client's own queue.
    client = AsyncHTTPClient(force_instance=True, max_clients=2)
    load = AsyncHTTPClient(force_instance=True, max_clients=logins)
    token = await login(client, url)
    idle = await me_latencies(client, url, token, samples)

    stop, login_times = asyncio.Event(), []
    workers = [asyncio.create_task(hammer(load, url, stop, login_times)) for _ in range(logins)]
    await asyncio.sleep(1.0)  # let the bcrypt pool fill up
    loaded = await me_latencies(client, url, token, samples)
    stop.set()
    await asyncio.gather(*workers)

    rows = []
    for name, values in (("idle", idle), (f"{logins} concurrent logins", loaded)):
        p50, p99, worst = summary(values)
        rows.append((name, len(values), p50, p99, worst))
    print(table(["users/me/ while", "requests", "p50 ms", "p99 ms", "max ms"], rows))
    login_p50 = summary(login_times)[0]
    print(f"\nlogins completed during the loaded run: {len(login_times)} (p50 {login_p50:.0f} ms each)")
    print(f"ratio loaded/idle: p50 {rows[1][2] / rows[0][2]:.2f}x, p99 {rows[1][3] / rows[0][3]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=16)
    parser.add_argument("--samples", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "config.yaml"
        # The shipped bcrypt cost; a login limit the load never reaches.
        config.write_text("accounts:\n  rate_limit_login: 1000000/60\n")
        server = ServerProcess(
            {
                "ADMIN_EMAIL": EMAIL,
                "ADMIN_PASSWORD": PASSWORD,
                "SECRET_KEY": "bench",
                "MONGODB_URI": "memory://",
            },
            config,
        )
        try:
            asyncio.run(run(server.url, args.logins, args.samples))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
