"""Helpers for the transcoding tests: uploads, polling, the process table."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

import psutil
from bson import ObjectId

from tests.media import multipart
from transcode.ffmpeg import ffmpeg_binary
from transcode.probe import MediaInfo, probe


def ours(tmp_path: Path) -> list[psutil.Process]:
    """FFmpeg processes (real or fake) working on this test's files, wherever they were re-parented."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(tmp_path) in cmdline and ("ffmpeg" in cmdline or "fake_ffmpeg" in cmdline):
            found.append(proc)
    return found


async def upload(api, token: str, clip: Path, title: str = "clip") -> str:
    """Upload a clip as staff; the new video's id."""
    body, content_type = multipart({"title": title}, clip.read_bytes(), filename=clip.name)
    reply = await api.post("/api/videos/", body=body, headers={"Content-Type": content_type}, token=token)
    assert reply.code == 201, reply.data
    return reply.data["id"]


async def stuck_report(db, video_id: str) -> str:
    """What a test that waited in vain saw: the video's jobs, and the processes this one started, which
    were running or waiting (FFmpeg, the probe). Each pool worker is asked (SIGUSR1, see init_worker)
    to print its threads' stacks into the test's captured stderr."""
    jobs = [
        {k: job.get(k) for k in ("type", "state", "attempts", "progress", "error", "lease_until")}
        async for job in db.jobs.find({"key": {"$regex": f":{video_id}$"}})
    ]
    lines = [f"jobs: {jobs}"]
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmdline = " ".join(child.cmdline())
            lines.append(
                f"pid {child.pid} {child.status()} cpu {sum(child.cpu_times()[:2]):.1f}s: {cmdline[:300]}"
            )
            if "spawn_main" in cmdline:
                os.kill(child.pid, signal.SIGUSR1)
    lines += task_stacks()
    await asyncio.sleep(0.5)  # the stacks land before the failure is reported
    return "\n".join(lines)


def task_stacks() -> list[str]:
    """Where each task of this process's event loop waits, down its chain of awaits (a job stuck after
    its worker returned)."""
    lines = []
    for task in asyncio.all_tasks():
        chain, awaited = [], task.get_coro()
        while awaited is not None:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is not None:
                chain.append(f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name}")
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
        lines.append(f"task {task.get_name()}: {' > '.join(chain)}")
    return lines


async def wait_for(db, video_id: str, check, timeout: float = 60.0) -> dict[str, Any]:
    """Poll the video until check(doc) holds; the document."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        doc = await db.videos.find_one({"_id": ObjectId(video_id)})
        if doc is not None and check(doc):
            return doc
        if asyncio.get_running_loop().time() > deadline:
            report = await stuck_report(db, video_id)
            raise AssertionError(f"video never got there; last state: {doc}\n{report}")
        await asyncio.sleep(0.05)


async def wait_for_status(db, video_id: str, status: str, timeout: float = 60.0) -> dict[str, Any]:
    return await wait_for(db, video_id, lambda doc: doc.get("status") == status, timeout)


async def wait_for_job(
    db, video_id: str, check, timeout: float = 20.0, kind: str = "transcode"
) -> dict[str, Any]:
    """Poll the video's job of that kind (transcode, publish) until check(job) holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        job = await db.jobs.find_one({"key": f"{kind}:{video_id}"})
        if job is not None and check(job):
            return job
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"job never got there: {job}")
        await asyncio.sleep(0.05)


async def wait_for_run(runs: Path, count: int = 1, timeout: float = 20.0) -> list[str]:
    """The fake FFmpeg's run log, once it holds `count` runs."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        lines = runs.read_text().splitlines() if runs.exists() else []
        if len(lines) >= count:
            return lines
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"fake FFmpeg ran {len(lines)} time(s), not {count}")
        await asyncio.sleep(0.05)


def alive(pid: int) -> bool:
    """True while the process runs (a zombie counts as gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def gone(pid: int, timeout: float = 3.0) -> bool:
    """Wait until the process is gone; False if it outlives the timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    while alive(pid):
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def media_files(settings, video_id: str) -> list[Path]:
    folder = Path(settings.media.root) / "videos" / video_id
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def ffmpeg_reading_at(tmp_path: Path, rate: float) -> Path:
    """The real FFmpeg reading its input at `rate` times real time (a 12 s clip at 2 takes about 6 s):
    time for a test to look at a transcode while it runs."""
    wrapper = tmp_path / f"ffmpeg-readrate-{rate}"
    # The audio rendition's FFmpegs (-vn) read at full speed, as it is the video that takes time.
    wrapper.write_text(
        f'#!/bin/sh\ncase " $* " in *" -vn "*) exec "{ffmpeg_binary()}" "$@";; esac\n'
        f'exec "{ffmpeg_binary()}" -readrate {rate} "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


async def probe_rendition(folder: Path) -> MediaInfo:
    """What a CMAF rendition's first fragment holds: its init segment and first segment are one
    fragmented MP4 (the probe opens no playlist)."""
    with tempfile.TemporaryDirectory() as scratch:
        joined = Path(scratch) / "first.mp4"
        joined.write_bytes((folder / "init.mp4").read_bytes() + (folder / "seg_00001.m4s").read_bytes())
        return await probe(joined)
