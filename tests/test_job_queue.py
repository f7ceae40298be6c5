"""The one job queue: back-off, leases across restarts, and shutdown."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

from models.jobs import Jobs
from services.jobs import JobContext, JobQueue, JobType, RetryableError
from tests.conftest import run_due


class Flaky(JobType):
    """Fails the first `failures` runs, then succeeds; remembers each run."""

    name = "flaky"

    def __init__(self, failures: int = 0) -> None:
        self.settings = SimpleNamespace(max_attempts=10, retry_base_s=10.0)
        self.failures = failures
        self.runs: list[int] = []

    async def run(self, ctx: JobContext) -> None:
        self.runs.append(ctx.job["attempts"])
        if len(self.runs) <= self.failures:
            raise RetryableError("not yet")


class Slow(JobType):
    name = "slow"
    settings = SimpleNamespace(max_attempts=3, retry_base_s=1.0)

    async def run(self, ctx: JobContext) -> None:
        await ctx.stopped.wait()
        raise RetryableError("stopped")


def queue_of(db, settings, clock, *types: JobType, node: str = "node-a") -> JobQueue:
    return JobQueue(Jobs(db), settings.jobs, list(types), node=node, clock=clock)


async def test_back_off_doubles_from_the_base_and_stops_at_the_cap(db, settings, clock):
    settings.jobs.backoff_cap_s = 60
    queue = queue_of(db, settings, clock, Flaky())
    delays = [queue.backoff(queue.types["flaky"], attempts) for attempts in range(1, 7)]
    assert delays == [10, 20, 40, 60, 60, 60]


async def test_jitter_spreads_retries_within_its_share(db, settings, clock):
    settings.jobs.jitter = 0.2
    queue = queue_of(db, settings, clock, Flaky())
    delays = {queue.backoff(queue.types["flaky"], 1) for _ in range(50)}
    assert len(delays) > 1
    assert all(8 <= delay <= 12 for delay in delays)


async def test_a_failing_job_runs_again_only_after_its_back_off(db, settings, clock):
    flaky = Flaky(failures=1)
    queue = queue_of(db, settings, clock, flaky)
    job_id = await queue.enqueue("flaky", {})
    assert await run_due(queue) == 1
    job = await queue.jobs.get(job_id)
    assert (job["state"], job["last_error"], job["run_after"]) == (
        "queued",
        "not yet",
        clock() + timedelta(seconds=10),
    )
    assert await run_due(queue) == 0
    clock.advance(seconds=11)
    assert await run_due(queue) == 1
    assert (await queue.jobs.get(job_id))["state"] == "done"
    assert flaky.runs == [1, 2]


async def test_a_restarted_node_takes_its_own_stale_job_back_at_once_but_not_another_nodes(
    db, settings, clock
):
    old_life = queue_of(db, settings, clock, Slow(), node="node-a")
    await old_life.enqueue("slow", {})
    await old_life.enqueue("slow", {})
    claimed = await old_life.jobs.claim(["slow"], old_life.owner, "node-a", clock(), 60)
    other = await old_life.jobs.claim(["slow"], "node-b/1", "node-b", clock(), 60)
    assert claimed and other  # then both processes were killed with -9
    new_life = queue_of(db, settings, clock, Slow(), node="node-a")
    await new_life.fill()
    assert list(new_life.running) == [claimed["_id"]]  # its own, at once; node-b's waits for its lease
    await new_life.stop(grace_s=2)
    job = await new_life.jobs.get(claimed["_id"])
    assert (job["state"], job["attempts"]) == ("queued", 1)  # handed back at shutdown, attempt not counted


async def test_a_job_that_runs_out_of_attempts_fails_with_a_readable_reason(db, settings, clock):
    flaky = Flaky(failures=5)
    flaky.settings.max_attempts = 2
    queue = queue_of(db, settings, clock, flaky)
    job_id = await queue.enqueue("flaky", {})
    await run_due(queue)
    clock.advance(hours=1)
    await run_due(queue)
    job = await queue.jobs.get(job_id)
    assert (job["state"], job["last_error"]) == ("failed", "The job failed after 2 attempts: not yet")


async def test_jobs_of_the_first_version_are_moved_into_the_common_shape_at_start(db, clock):
    from bson import ObjectId

    from models import ensure_indexes

    video_id = ObjectId()
    await db.jobs.insert_one({"video_id": video_id, "status": "queued", "attempts": 0, "run_after": clock()})
    await ensure_indexes(db)
    job = await db.jobs.find_one({})
    assert (job["type"], job["key"], job["state"], job["payload"]) == (
        "transcode",
        f"transcode:{video_id}",
        "queued",
        {"video_id": video_id},
    )
    assert "status" not in job and "video_id" not in job
    await db.jobs.insert_one({"type": "mail", "state": "queued", "payload": {}})  # no key: no clash
    await db.jobs.insert_one({"type": "mail", "state": "queued", "payload": {}})
