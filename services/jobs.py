"""The one durable job queue: every background job (transcode, mail, ...) runs through it.

Jobs live in MongoDB (models/jobs.py), so they survive restarts and any number of processes share them.
This process claims due jobs of the types it handles, renews their leases while they run, and settles
them: done, retried later with capped exponential back-off and jitter, failed for good after
`max_attempts` with a readable reason, or handed back at shutdown. A job type is a small handler
(`JobType`), as PeerTube's job handlers are; one loop wakes on new work and polls for the rest.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import os
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bson import ObjectId

from core.clock import Clock, utcnow
from core.config import JobSettings
from core.errors import Conflict, NotFound
from core.metrics import Metrics
from models.jobs import Job, Jobs

log = logging.getLogger("videoflix.jobs")

SHUTDOWN, CANCELLED = "shutdown", "cancelled"


class RetryableError(Exception):
    """A transient failure: the job runs again after a back-off, until it has used its attempts."""


class PermanentError(Exception):
    """The job can never succeed (bad input): it fails at once with this sentence."""


class JobStopped(Exception):
    """The job stopped because it was asked to (shutdown, cancel, delete): see `JobContext.stop_reason`."""


@dataclass
class JobContext:
    """What a running job can see and do: its document, whether it must stop, and its progress."""

    job: dict[str, Any]
    queue: JobQueue
    stop_reason: str | None = None
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def id(self) -> ObjectId:
        job_id: ObjectId = self.job["_id"]
        return job_id

    @property
    def payload(self) -> dict[str, Any]:
        return self.job.get("payload") or {}

    def stop(self, reason: str) -> None:
        """Ask the job to stop (it watches `stopped`)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stopped.set()

    async def still_held(self) -> bool:
        """Renew the lease now: False when the job was cancelled, deleted or taken over meanwhile."""
        return await self.queue.jobs.renew(
            self.id, self.queue.owner, self.queue.clock(), self.queue.settings.lease_s
        )

    async def progress(self, percent: int) -> None:
        """Record how far the job is (0 to 100)."""
        with contextlib.suppress(Exception):  # progress is a hint; never fail a job over it
            await self.queue.jobs.set_progress(self.id, self.queue.owner, percent)


class JobType(abc.ABC):
    """A kind of job: its name, how many run at once here, its attempts, and what to do on each event."""

    name: str = ""
    title: str = "The job"  # the start of its sentences: "<title> failed after 3 attempts: ..."
    concurrency: int = 1
    # Its settings section, read live: `max_attempts` and `retry_base_s` (the first back-off) come from it.
    settings: Any = None
    # Payload fields dropped once the job is done (mails drop their bodies, which carry codes).
    scrub_when_done: tuple[str, ...] = ()

    @property
    def max_attempts(self) -> int:
        return int(self.settings.max_attempts)

    @property
    def retry_base_s(self) -> float:
        return float(self.settings.retry_base_s)

    @abc.abstractmethod
    async def run(self, ctx: JobContext) -> None:
        """Do the job; raise RetryableError, PermanentError or JobStopped when it does not succeed."""

    async def sweep(self) -> None:  # noqa: B027 (an optional hook)
        """Called on every turn of the loop: find work that has no job yet (e.g. admin-inserted videos)."""

    async def on_failed(self, job: dict[str, Any], error: str) -> None:  # noqa: B027 (an optional hook)
        """The job failed for good."""

    async def on_retry(self, job: dict[str, Any], error: str) -> None:  # noqa: B027 (an optional hook)
        """An attempt failed; the job will run again."""

    async def on_handed_back(self, job: dict[str, Any]) -> None:  # noqa: B027 (an optional hook)
        """The job was stopped by a shutdown and queued again."""

    async def on_cancelled(self, job: dict[str, Any]) -> None:  # noqa: B027 (an optional hook)
        """Staff cancelled the job."""

    async def on_requeued(self, job: dict[str, Any]) -> None:  # noqa: B027 (an optional hook)
        """Staff queued an ended job again."""


@dataclass
class Running:
    ctx: JobContext
    type: JobType
    task: asyncio.Task[None] | None = None


def node_name(settings: JobSettings, port: int) -> str:
    """This process's stable name among runners: the setting, else host:port."""
    return settings.node or f"{os.uname().nodename}:{port}"


class JobQueue:
    """Claims, runs and settles this process's jobs; queues new ones for any process."""

    def __init__(
        self,
        jobs: Jobs,
        settings: JobSettings,
        types: Sequence[JobType],
        *,
        node: str,
        clock: Clock = utcnow,
        run_types: Sequence[str] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.jobs = jobs
        self.metrics = metrics
        self.settings = settings
        self.types = {job_type.name: job_type for job_type in types}
        # The types this process runs (a role may queue jobs it leaves to other processes).
        self.run_types = list(self.types) if run_types is None else list(run_types)
        self.clock = clock
        self.node = node
        self.owner = f"{node}/{secrets.token_hex(4)}"  # a new boot id every start
        self.running: dict[ObjectId, Running] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._last_purge = 0.0

    # --- queueing -----------------------------------------------------------------------------

    async def enqueue(
        self, type_name: str, payload: dict[str, Any], *, key: str | None = None, only_node: str | None = None
    ) -> ObjectId:
        """Store a job for any process to run (or only for `only_node`); wakes this process's loop."""
        job_type = self.types[type_name]
        job_id = await self.jobs.enqueue(
            type_name, payload, self.clock(), key=key, max_attempts=job_type.max_attempts, only_node=only_node
        )
        self.wake()
        return job_id

    def wake(self) -> None:
        """Look for work now."""
        self._wake.set()

    async def retry(self, job_id: str) -> Job:
        """Queue a failed, cancelled or done job again, its attempts counted afresh."""
        job = await self._get(job_id)
        again = await self.jobs.requeue(job["_id"], self.clock())
        if again is None:
            raise Conflict("Only a failed, cancelled or finished job can be retried.")
        job_type = self.types.get(again.get("type", ""))
        if job_type is not None:
            await job_type.on_requeued(again)
        self.wake()
        return Job.from_doc(again)

    async def cancel(self, job_id: str) -> Job:
        """Stop a queued or running job; its holder, here or elsewhere, stops it at the next renewal."""
        job = await self._get(job_id)
        cancelled = await self.jobs.cancel(job["_id"], self.clock())
        if cancelled is None:
            raise Conflict("Only a queued or running job can be cancelled.")
        await self.stop_local(job["_id"], CANCELLED)
        job_type = self.types.get(cancelled.get("type", ""))
        if job_type is not None:
            await job_type.on_cancelled(cancelled)
        return Job.from_doc(cancelled)

    async def forget(self, key: str) -> None:
        """Remove the job of a key (its subject is gone), stopping it first if it runs here."""
        job = await self.jobs.by_key(key)
        if job is None:
            return
        await self.jobs.delete_key(key)
        await self.stop_local(job["_id"], CANCELLED)

    async def stop_local(self, job_id: ObjectId, reason: str, wait_s: float = 3.0) -> None:
        """Stop a job if this process runs it, and wait (a little) until it has stopped."""
        running = self.running.get(job_id)
        if running is None:
            return
        running.ctx.stop(reason)
        if running.task is not None:
            await asyncio.wait([running.task], timeout=wait_s)

    async def _get(self, job_id: str) -> dict[str, Any]:
        job = await self.jobs.get(job_id)
        if job is None:
            raise NotFound()
        return job

    # --- the loop -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop on the running event loop."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="job-queue")
            log.info("job queue started on %s: runs %s", self.owner, ", ".join(self.run_types) or "nothing")

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop claiming; stop every running job and hand it back; wait up to `grace_s` for them."""
        self._stopping = True
        self._wake.set()
        for running in list(self.running.values()):
            running.ctx.stop(SHUTDOWN)
        tasks = [r.task for r in self.running.values() if r.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._stopping = False  # stopped: `turn()` may still be called by hand (tools, tests)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.turn()
            except Exception:  # the loop must outlive a database hiccup; the jobs stay queued
                log.exception("job queue turn failed; trying again")
            self._wake.clear()
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_interval_s):
                    await self._wake.wait()

    async def turn(self) -> None:
        """One turn: let job types find new work, claim what this process has room for, tidy up."""
        for name in self.run_types:
            await self.types[name].sweep()
        await self.fill()
        await self._purge_old()

    async def fill(self) -> None:
        """Claim due jobs while this process has room for their types."""
        while not self._stopping:
            free = [name for name in self.run_types if self._busy(name) < self.types[name].concurrency]
            if not free:
                return
            job = await self.jobs.claim(free, self.owner, self.node, self.clock(), self.settings.lease_s)
            if job is None:
                return
            running = Running(JobContext(job, self), self.types[job["type"]])
            self.running[job["_id"]] = running
            running.task = asyncio.get_running_loop().create_task(self._execute(running))

    def _busy(self, type_name: str) -> int:
        return sum(1 for r in self.running.values() if r.type.name == type_name)

    async def _purge_old(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._last_purge < 3600:
            return
        self._last_purge = now
        removed = await self.jobs.purge_finished(self.clock() - timedelta(days=self.settings.keep_done_days))
        if removed:
            log.info("forgot %d finished job(s) older than %g days", removed, self.settings.keep_done_days)

    # --- one job ------------------------------------------------------------------------------

    async def _execute(self, running: Running) -> None:
        ctx, job = running.ctx, running.ctx.job
        lease = asyncio.get_running_loop().create_task(self._keep_lease(ctx))
        try:
            try:
                await running.type.run(ctx)
            finally:
                lease.cancel()
            await self._settle_done(running)
        except JobStopped:
            await self._settle_stopped(running)
        except PermanentError as err:
            await self._settle_failed(running, str(err) or "The job cannot be done.")
        except Exception as err:
            if ctx.stop_reason is not None:
                await self._settle_stopped(running)
            else:
                await self._settle_error(running, err)
        finally:
            self.running.pop(job["_id"], None)
            self._wake.set()

    async def _keep_lease(self, ctx: JobContext) -> None:
        """Renew the lease a few times per lease; a job that is gone, cancelled or taken is stopped."""
        interval = min(1.0, self.settings.lease_s / 3)
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):  # a hiccup: the next renewal tries again
                if not await self.jobs.renew(ctx.id, self.owner, self.clock(), self.settings.lease_s):
                    ctx.stop(CANCELLED)
                    return

    def backoff(self, job_type: JobType, attempts: int) -> float:
        """Seconds before the next attempt: doubling from the type's base, capped, with jitter."""
        delay = min(self.settings.backoff_cap_s, job_type.retry_base_s * 2 ** max(0, attempts - 1))
        jitter: float = self.settings.jitter
        return float(delay * (1 + random.uniform(-jitter, jitter)))

    async def _settle_done(self, running: Running) -> None:
        job = running.ctx.job
        if not await self.jobs.finish(
            job["_id"], self.owner, self.clock(), [f"payload.{name}" for name in running.type.scrub_when_done]
        ):
            log.info("job %s (%s) finished, but it was no longer ours", job["_id"], job["type"])

    async def _settle_stopped(self, running: Running) -> None:
        job = running.ctx.job
        if running.ctx.stop_reason == SHUTDOWN and await self.jobs.hand_back(
            job["_id"], self.owner, self.clock()
        ):
            await running.type.on_handed_back(job)
            log.info("job %s (%s) handed back at shutdown", job["_id"], job["type"])

    async def _settle_failed(self, running: Running, error: str) -> None:
        job = running.ctx.job
        if await self.jobs.fail(job["_id"], self.owner, self.clock(), error):
            await running.type.on_failed(job, error)
            if self.metrics is not None:
                self.metrics.job_failed(job["type"])
            log.warning("job %s (%s) failed: %s", job["_id"], job["type"], error)

    async def _settle_error(self, running: Running, err: Exception) -> None:
        job, job_type = running.ctx.job, running.type
        reason = str(err) if isinstance(err, RetryableError) else f"{type(err).__name__}: {err}"
        if not isinstance(err, RetryableError):
            log.error("job %s (%s) broke", job["_id"], job["type"], exc_info=err)
        if job["attempts"] >= job_type.max_attempts:
            await self._settle_failed(
                running, f"{job_type.title} failed after {job['attempts']} attempts: {reason}"
            )
            return
        delay = self.backoff(job_type, job["attempts"])
        when = self.clock() + timedelta(seconds=delay)
        if await self.jobs.retry_later(job["_id"], self.owner, when, reason):
            await job_type.on_retry(job, reason)
            if self.metrics is not None:
                self.metrics.job_retried(job["type"])
            log.warning(
                "job %s (%s) attempt %d failed, retrying in %.0f s: %s",
                job["_id"],
                job["type"],
                job["attempts"],
                delay,
                reason,
            )

    # --- for staff ----------------------------------------------------------------------------

    async def page(
        self, *, state: str | None, types: Sequence[str] | None, offset: int, limit: int
    ) -> tuple[list[Job], int]:
        """Jobs newest first, filtered by state and by type (None: every type)."""
        docs, count = await self.jobs.page(state=state, types=types, offset=offset, limit=limit)
        return [Job.from_doc(doc) for doc in docs], count

    async def get(self, job_id: str) -> Job | None:
        """One job; None for an unknown or malformed id."""
        doc = await self.jobs.get(job_id)
        return Job.from_doc(doc) if doc is not None else None
