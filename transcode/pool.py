"""The process pool that runs FFmpeg jobs, and the thread that carries their events back.

Workers are spawned (a forked IOLoop or MongoDB client is unsafe) and never touch MongoDB: they report
progress through a multiprocessing queue that a thread moves onto the event loop, and return an Outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from transcode.worker import TRANSIENT, Outcome, init_worker, transcode

log = logging.getLogger("videoflix.transcode")

EventSink = Callable[[str, Any], None]


def default_workers() -> int:
    """One transcoding process per two cores, at least one: FFmpeg itself uses several threads."""
    return max(1, (os.cpu_count() or 2) // 2)


class TranscodePool:
    """Runs JobSpecs in spawned worker processes; a broken pool is replaced and the job reported failed."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or default_workers()
        self._context = multiprocessing.get_context("spawn")
        self._events = self._context.Queue()
        self._sinks: dict[str, EventSink] = {}
        self._pool: ProcessPoolExecutor | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        """Start the pool and the event reader (on the running event loop)."""
        if self._pool is not None:
            return
        loop = asyncio.get_running_loop()
        self._pool = self._new_pool()
        self._reader = threading.Thread(
            target=self._read_events, args=(loop,), name="transcode-events", daemon=True
        )
        self._reader.start()

    async def stop(self) -> None:
        """Shut the pool down (its jobs must have been stopped) and the reader with it."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._close_pool, pool)
        if self._reader is not None:
            self._events.put(None)
            self._reader.join(timeout=5)
            self._reader = None

    async def run(
        self, spec: Any, on_event: EventSink, work: Callable[[Any], Outcome] = transcode
    ) -> Outcome:
        """Run one job in a worker (`work(spec)`: the ladder's transcode unless told, e.g. the AV1 pass);
        its events (pid, progress, ...) reach `on_event` on the event loop."""
        if self._pool is None:
            self.start()
        assert self._pool is not None
        self._sinks[spec.key] = on_event
        try:
            return await asyncio.wrap_future(self._pool.submit(work, spec))
        except BrokenProcessPool:
            self._restart_pool()
            return Outcome(TRANSIENT, "The transcoding process died.")
        finally:
            self._sinks.pop(spec.key, None)

    async def call(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        """Run a picklable module-level function on one argument in a worker (an added track's encode);
        BrokenProcessPool when the worker died (the pool is replaced)."""
        if self._pool is None:
            self.start()
        assert self._pool is not None
        try:
            return await asyncio.wrap_future(self._pool.submit(fn, arg))
        except BrokenProcessPool:
            self._restart_pool()
            raise

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=self._context,
            initializer=init_worker,
            initargs=(self._events, os.getpid()),
        )

    @staticmethod
    def _close_pool(pool: ProcessPoolExecutor) -> None:
        pool.shutdown(wait=True, cancel_futures=True)

    def _restart_pool(self) -> None:
        """A worker died: the pool is broken for good, so start a fresh one."""
        old, self._pool = self._pool, self._new_pool()
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)
        log.warning("a transcoding worker died; the pool was restarted")

    def _read_events(self, loop: asyncio.AbstractEventLoop) -> None:
        """Thread: move worker events onto the event loop."""
        while True:
            item = self._events.get()
            if item is None:
                return
            with contextlib.suppress(RuntimeError):  # the loop closed under us at exit
                loop.call_soon_threadsafe(self._dispatch, *item)

    def _dispatch(self, key: str, kind: str, value: Any) -> None:
        sink = self._sinks.get(key)
        if sink is not None:
            sink(kind, value)
