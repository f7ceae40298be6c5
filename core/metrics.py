"""Prometheus metrics: one registry per process (per composition root), and the samplers that fill it.

Request metrics are labelled by route template (`/api/videos/{video_id}/`), never by raw path: a path
holds ids and grants, and each would become a time series of its own. Values that cost a query (the
job queue's depth, the database's ping) are refreshed by a background task, never on a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger("videoflix.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
TRANSCODE_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600, 7200)
SPEED_BUCKETS = (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
STARTUP_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30)
JOB_STATES = ("queued", "running", "done", "failed", "cancelled")


class Metrics:
    """Every metric of the process, in a registry of its own (tests build many processes in one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "videoflix_http_requests_total",
            "HTTP requests answered.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "videoflix_http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "videoflix_http_requests_in_flight",
            "HTTP requests being answered.",
            registry=r,
        )
        self.loop_lag = Gauge(
            "videoflix_ioloop_lag_seconds",
            "How late the IOLoop ran a timer, at the last sample.",
            registry=r,
        )
        self.jobs = Gauge(
            "videoflix_jobs",
            "Jobs in the queue by type and state.",
            ["type", "state"],
            registry=r,
        )
        self.job_failures = Counter(
            "videoflix_job_failures_total",
            "Jobs that failed for good.",
            ["type"],
            registry=r,
        )
        self.job_retries = Counter(
            "videoflix_job_retries_total",
            "Job attempts that failed and were queued again.",
            ["type"],
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "videoflix_outbox_backlog",
            "Mails queued and not yet delivered (mail jobs queued or running).",
            registry=r,
        )
        self.outbox_failures = Counter(
            "videoflix_outbox_failures_total",
            "Mails given up on after their last attempt.",
            registry=r,
        )
        self.transcode_seconds = Histogram(
            "videoflix_transcode_duration_seconds",
            "Wall time of a finished transcode.",
            buckets=TRANSCODE_BUCKETS,
            registry=r,
        )
        self.transcode_speed = Histogram(
            "videoflix_transcode_speed_ratio",
            "Seconds of video per second of transcoding (times real time) of a finished transcode.",
            buckets=SPEED_BUCKETS,
            registry=r,
        )
        self.db_ping = Gauge(
            "videoflix_database_ping_seconds",
            "Latency of the last database ping (-1: no answer).",
            registry=r,
        )

        self.playback_startup = Histogram(
            "videoflix_playback_startup_seconds",
            "Time from play to the first frame, as players report it.",
            buckets=STARTUP_BUCKETS,
            registry=r,
        )
        self.playback_rebuffers = Counter(
            "videoflix_playback_rebuffers_total",
            "Stalls players reported, by the rendition playing (a video's own heights, else other).",
            ["rendition"],
            registry=r,
        )
        self.playback_rebuffer_seconds = Counter(
            "videoflix_playback_rebuffer_seconds_total",
            "Seconds players spent stalled, by the rendition playing.",
            ["rendition"],
            registry=r,
        )
        self.playback_errors = Counter(
            "videoflix_playback_errors_total",
            "Errors players reported, by the rendition playing.",
            ["rendition"],
            registry=r,
        )

    def request_done(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count an answered request under its route template."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def transcode_done(self, seconds: float, video_seconds: float) -> None:
        """A transcode finished: its wall time, and its speed when the source's duration is known."""
        self.transcode_seconds.observe(seconds)
        if seconds > 0 and video_seconds > 0:
            self.transcode_speed.observe(video_seconds / seconds)

    def job_failed(self, type_name: str) -> None:
        self.job_failures.labels(type_name).inc()
        if type_name == "mail":
            self.outbox_failures.inc()

    def job_retried(self, type_name: str) -> None:
        self.job_retries.labels(type_name).inc()

    def set_job_counts(self, counts: dict[tuple[str, str], int], types: list[str]) -> None:
        """The queue's depth: every known (type, state) gets a value, zero when absent."""
        for type_name in {*types, *(t for t, _ in counts)}:
            for state in {*JOB_STATES, *(s for t, s in counts if t == type_name)}:
                self.jobs.labels(type_name, state).set(counts.get((type_name, state), 0))
        self.outbox_backlog.set(counts.get(("mail", "queued"), 0) + counts.get(("mail", "running"), 0))

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)


class Sampler:
    """Background tasks: the IOLoop's lag every `lag_interval_s`; the queue's depth and the database's
    ping every `interval_s`."""

    def __init__(
        self,
        metrics: Metrics,
        job_counts: Callable[[], Awaitable[dict[tuple[str, str], int]]],
        job_types: list[str],
        ping: Callable[[], Awaitable[bool]],
        *,
        interval_s: float = 15.0,
        lag_interval_s: float = 0.5,
    ) -> None:
        self.metrics = metrics
        self.job_counts = job_counts
        self.job_types = job_types
        self.ping = ping
        self.interval_s = interval_s
        self.lag_interval_s = lag_interval_s
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self._lag(), name="metrics-lag"),
                loop.create_task(self._queries(), name="metrics-queries"),
            ]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def refresh(self) -> None:
        """Sample the queue's depth and the database's ping once."""
        started = time.perf_counter()
        answered = await self.ping()
        self.metrics.db_ping.set(time.perf_counter() - started if answered else -1)
        self.metrics.set_job_counts(await self.job_counts(), self.job_types)

    async def _lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.lag_interval_s)
            self.metrics.loop_lag.set(max(0.0, loop.time() - before - self.lag_interval_s))

    async def _queries(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # a database hiccup must not end the sampling
                log.warning("metrics sampling failed", exc_info=True)
            await asyncio.sleep(self.interval_s)
