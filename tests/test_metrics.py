"""GET /metrics: Prometheus text behind a bearer token (or on a port of its own), by route template."""

from __future__ import annotations

import asyncio
import re
import urllib.request

import pytest
from bson import ObjectId

from tests.test_server import Running, environment, fetch

TOKEN = "a-scrape-token-for-the-tests"


def value(text: str, name: str, **labels: str) -> float | None:
    """One sample's value from the text format, None when absent."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(4))
    return None


async def scrape(api) -> str:
    reply = await api.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.code == 200, reply.body
    assert reply.headers["Content-Type"].startswith("text/plain")
    return reply.body.decode()


async def test_without_a_token_or_a_port_metrics_are_not_served(api):
    reply = await api.get("/metrics")
    assert (reply.code, reply.data) == (404, {"detail": "Not found."})


class TestWithAToken:
    @pytest.fixture
    def settings_overrides(self):
        return {"metrics": {"token": TOKEN, "interval_s": 0.05}}

    async def test_metrics_need_the_bearer_token(self, api):
        assert (await api.get("/metrics")).code == 401
        wrong = await api.get("/metrics", headers={"Authorization": "Bearer not-it"})
        assert wrong.code == 401
        assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await api.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).code == 200

    async def test_requests_are_counted_by_route_template_never_by_raw_path(self, api, user_token):
        video_id = str(ObjectId())
        for _ in range(3):
            assert (await api.get(f"/api/videos/{video_id}/", token=user_token)).code == 404
        text = await scrape(api)
        route = "/api/videos/{video_id}/"
        assert value(text, "videoflix_http_requests_total", method="GET", route=route, status="404") == 3
        assert value(text, "videoflix_http_request_duration_seconds_count", method="GET", route=route) == 3
        assert video_id not in text
        assert value(text, "videoflix_http_requests_in_flight") == 1  # the scrape itself

    async def test_queue_depth_loop_lag_and_database_ping_are_sampled_in_the_background(self, api, services):
        await services.queue.enqueue("transcode", {"video_id": ObjectId()}, key="transcode:x")
        for _ in range(100):
            text = await scrape(api)
            if value(text, "videoflix_jobs", type="transcode", state="queued") == 1:
                break
            await asyncio.sleep(0.05)
        assert value(text, "videoflix_jobs", type="transcode", state="queued") == 1
        assert value(text, "videoflix_jobs", type="mail", state="failed") == 0
        assert value(text, "videoflix_outbox_backlog") == 0
        assert value(text, "videoflix_database_ping_seconds") > 0
        assert value(text, "videoflix_ioloop_lag_seconds") is not None

    async def test_a_mail_given_up_on_counts_as_an_outbox_failure(self, api, services, mailbox, clock):
        mailbox.stop()  # every attempt fails: 3 of them (mail_settings), then the mail is given up
        await services.mailer.send("welcome", "ann@example.com", {"name": "Ann", "link": "http://x/"})
        for _ in range(200):
            text = await scrape(api)
            if value(text, "videoflix_outbox_failures_total") == 1:
                break
            clock.advance(seconds=5)  # past the back-off, never past a running attempt's lease
            services.queue.wake()
            await asyncio.sleep(0.05)
        assert value(text, "videoflix_job_retries_total", type="mail") == 2
        assert value(text, "videoflix_outbox_failures_total") == 1
        assert value(text, "videoflix_job_failures_total", type="mail") == 1


def test_metrics_port_serves_metrics_apart_from_the_api(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f"media:\n  root: {tmp_path / 'media'}\naccounts:\n  bcrypt_rounds: 4\n")
    running = Running("--port", "0", "--config", str(config), env=environment(METRICS_PORT="0"))
    try:
        url = running.wait_for(r"listening on (http://\S+)").group(1)
        metrics_url = running.wait_for(r"metrics on (http://\S+)").group(1)
        assert fetch(url + "/api/health/")[0] == 200
        status, body = fetch(metrics_url)
        assert status == 200
        assert b'videoflix_http_requests_total{method="GET",route="/api/health/",status="200"} 1.0' in body
        with pytest.raises(urllib.error.HTTPError) as refused:
            fetch(url + "/metrics")  # no token: not on the API's port
        assert refused.value.code == 404
        refused.value.close()
    finally:
        assert running.stop() == 0
