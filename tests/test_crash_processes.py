"""Crash safety with real processes: `python server.py` is killed with kill -9 in the middle of a
transcode and of a mail, restarted on the same node, and finishes both at once, not after a lease.

The two lives share one database: the MongoDB of TEST_MONGODB_URI when set, else the wire-protocol
double (tests/mongo_wire.py) in a process of its own. The in-process version of the same scenario is
tests/transcoding/test_crash_safety.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest
from bson import ObjectId
from pymongo import MongoClient

from tests.conftest import database_uri
from tests.mailbox import Mailbox
from tests.media import make_clip
from tests.test_server import Running, environment
from tests.transcoding.helpers import ffmpeg_reading_at
from tests.transcoding.test_supervisor import upload_to

pytestmark = pytest.mark.slow

NODE = "crash-node"
LEASE_S = 120  # "at once" means long before another node could take the jobs over


def config(tmp_path: Path, smtp_port: int, ffmpeg: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
server: {{debug: false, secret_key: crash-test-secret-key-long-enough}}
media: {{root: {tmp_path / "media"}}}
email: {{backend: smtp, host: 127.0.0.1, port: {smtp_port}, timeout_s: 60}}
accounts: {{bcrypt_rounds: 4}}
transcode: {{workers: 1, preset: ultrafast, segment_s: 1, ffmpeg: {ffmpeg}, progress_interval_s: 0.2}}
jobs: {{node: {NODE}, lease_s: {LEASE_S}, poll_interval_s: 0.2, jitter: 0}}
admin: {{email: root@example.com, password: a-long-password}}
"""
    )
    return path


def post_json(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        url, method="POST", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def wait_until(check, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


def ffmpegs_below(pid: int) -> list[psutil.Process]:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p for p in children if "ffmpeg" in " ".join(p.cmdline())]


def test_a_node_killed_mid_transcode_and_mid_mail_finishes_both_at_once_after_a_restart(
    tmp_path, mongodb_uri
):
    uri = database_uri(mongodb_uri, "crash")
    # Life 1's SMTP server takes the connection and never answers: the mail is mid-send at the kill.
    mute_smtp = socket.create_server(("127.0.0.1", 0))
    smtp_port = mute_smtp.getsockname()[1]
    settings = config(tmp_path, smtp_port, ffmpeg_reading_at(tmp_path, 1))  # real time
    env = environment(MONGODB_URI=uri)
    database = MongoClient(uri, tz_aware=True).get_default_database()
    mailbox = None
    first = Running("--port", "0", "--config", str(settings), env=env)
    second = None
    try:
        url = first.wait_for(r"listening on (http://\S+)").group(1)
        signup = {"email": "new@example.com", "password": "a-long-password", "first_name": "New"}
        assert post_json(f"{url}/api/accounts/signup/", signup) == 201
        wait_until(
            lambda: database.jobs.find_one({"type": "mail", "state": "running"}), 20, "the mail is sending"
        )
        video_id = ObjectId(upload_to(url, make_clip(tmp_path / "twenty.mp4", "640x360", seconds=20)))
        wait_until(
            lambda: (database.videos.find_one({"_id": video_id}) or {}).get("transcode_progress", 0) >= 5,
            30,
            "the transcode is under way",
        )
        encoders = wait_until(lambda: ffmpegs_below(first.proc.pid), 10, "FFmpeg runs")

        first.proc.send_signal(signal.SIGKILL)
        first.proc.communicate(timeout=10)
        wait_until(lambda: not any(p.is_running() and p.status() != "zombie" for p in encoders), 10,
                   "no FFmpeg is left")  # fmt: skip
        for job in database.jobs.find({}):
            assert job["state"] == "running", job  # nothing was settled: the leases are left as they were

        mute_smtp.close()
        mailbox = Mailbox()
        mailbox.port = smtp_port
        mailbox.start()
        restarted = time.monotonic()
        second = Running("--port", "0", "--config", str(settings), env=env)
        second.wait_for(r"listening on")
        wait_until(lambda: mailbox.to("new@example.com"), 30, "the mail is delivered after the restart")
        resumed = wait_until(
            lambda: database.jobs.find_one({"type": "transcode", "state": "running", "attempts": 2}),
            30,
            "the transcode resumes",
        )
        assert time.monotonic() - restarted < LEASE_S / 4  # at once, not after the lease ran out
        assert resumed["node"] == NODE
        video = wait_until(
            lambda: (d := database.videos.find_one({"_id": video_id})) and d["status"] == "ready" and d,
            90,
            "the video is ready",
        )
        assert video["hls_path"] and (tmp_path / "media" / video["hls_path"]).is_file()
        assert len(mailbox.to("new@example.com")) == 1  # delivered once
    finally:
        for life in (first, second):
            if life is not None and life.proc.poll() is None:
                life.stop()
            elif life is not None:
                life.proc.communicate(timeout=10)  # its output pipe closed
        if mailbox is not None:
            mailbox.stop()
        mute_smtp.close()
        database.client.drop_database(database.name)
        database.client.close()
    assert not ffmpegs_below(os.getpid())
