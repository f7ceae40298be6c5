"""Fixtures of the transcoding tests: a queue that transcodes, fake FFmpegs, and no FFmpeg left behind."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.transcoding.helpers import ours
from transcode.ffmpeg import ffmpeg_binary

FAKE = Path(__file__).resolve().parent.parent / "fake_ffmpeg.py"


def fake_wrapper(tmp_path: Path, mode: str) -> tuple[Path, Path]:
    """An executable that runs the fake FFmpeg in `mode`; and the file listing its runs."""
    state = tmp_path / f"fake-{mode}"
    state.mkdir(exist_ok=True)
    wrapper = tmp_path / f"ffmpeg-{mode}"
    wrapper.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" {mode} "{state}" "{ffmpeg_binary()}" "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper, state / "runs"


@pytest.fixture
def settings_overrides():
    return {
        "transcode": {
            "workers": 1,
            "retry_base_s": 30,
            "max_attempts": 2,
            "progress_interval_s": 0.05,
            "preset": "ultrafast",
            "segment_s": 1,
        },
        "jobs": {"poll_interval_s": 0.05, "lease_s": 60, "jitter": 0},
    }


@pytest.fixture
def run_types() -> tuple[str, ...]:
    """These tests transcode for real: the queue runs every job type."""
    return ("mail", "transcode", "publish")


@pytest.fixture(autouse=True)
def no_ffmpeg_left(tmp_path):
    """After every test, no FFmpeg of it is running (checked on the process table)."""
    yield
    deadline = time.monotonic() + 5
    while ours(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ours(tmp_path) == [], "FFmpeg processes outlived the test"


@pytest.fixture
def fake_ffmpeg(tmp_path, settings):
    """Point the transcoder at a fake FFmpeg in the given mode; returns the file listing its runs."""

    def use(mode: str) -> Path:
        wrapper, runs = fake_wrapper(tmp_path, mode)
        settings.transcode.ffmpeg = str(wrapper)
        return runs

    return use
