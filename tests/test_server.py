"""server.py as deployers run it: a real process on a free port, and its start-up failures."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import server
from core.config import load_settings
from core.passwords import PasswordHasher
from tests.conftest import database_uri

ROOT = Path(__file__).resolve().parent.parent


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in server_env_names()}
    env.update(extra)
    return env


def server_env_names() -> set[str]:
    from core.config import ENVIRONMENT

    return set(ENVIRONMENT)


class Running:
    """A server.py process, read until it says where it listens."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "server.py"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env or environment(),
            cwd=cwd,
        )
        self.output: list[str] = []

    def wait_for(self, pattern: str, timeout: float = 20) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"never saw {pattern!r}; output:\n{''.join(self.output)}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        rest, _ = self.proc.communicate(timeout=20)
        self.output.append(rest)
        return self.proc.returncode

    def text(self) -> str:
        return "".join(self.output)


@pytest.fixture(autouse=True)
def root_logging_restored():
    """server.main() configures root logging onto this test's captured stderr; put it back after, so no
    later test (nor a thread of one) writes into a stream pytest has closed."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def config_file(tmp_path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"media:\n  root: {tmp_path / 'media'}\naccounts:\n  bcrypt_rounds: 4\n")
    return path


def fetch(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_server_starts_on_a_free_port_answers_health_and_stops_cleanly(config_file, sig):
    running = Running("--port", "0", "--config", str(config_file))
    try:
        url = running.wait_for(r"listening on (http://\S+)").group(1)
        status, body = fetch(url + "/api/health/")
        assert (status, body) == (200, b'{"status":"ok"}')
    finally:
        code = running.stop(sig)
    assert code == 0
    assert "stopped" in running.text()


def test_server_says_loudly_that_the_in_memory_database_is_forgotten(config_file):
    running = Running("--port", "0", "--config", str(config_file))
    try:
        running.wait_for(r"listening on")
    finally:
        running.stop()
    assert "IN-MEMORY DATABASE" in running.text()
    assert "MONGODB_URI" in running.text()


def test_server_with_unreachable_mongodb_exits_with_one_sentence_naming_the_host(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("database:\n  connect_timeout_s: 1\n")
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--config", str(config), "--port", "0"],
        env=environment(MONGODB_URI="mongodb://admin:hunter2@127.0.0.1:1/videoflix"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert time.monotonic() - started < 10
    assert "cannot reach MongoDB at 127.0.0.1:1" in proc.stderr
    assert "hunter2" not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_server_with_a_config_mistake_exits_naming_the_key(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("server:\n  prot: 1\n")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--config", str(config)],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "unknown setting 'server.prot'" in proc.stderr


def test_debug_off_without_secret_key_refuses_to_start(config_file):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--config", str(config_file)],
        env=environment(DEBUG="0"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "SECRET_KEY" in proc.stderr


def test_flags_override_the_environment():
    args = server.parse_args(["--host", "0.0.0.0", "--port", "9100"])
    settings = load_settings(
        None, environ={"PORT": "9000", "SECRET_KEY": "k"}, overrides=server.flag_overrides(args)
    )
    assert (settings.server.host, settings.server.port) == ("0.0.0.0", 9100)


def test_admin_environment_makes_a_verified_staff_user_at_start(config_file):
    running = Running(
        "--port",
        "0",
        "--config",
        str(config_file),
        env=environment(ADMIN_EMAIL="boss@example.com", ADMIN_PASSWORD="a-long-password"),
    )
    try:
        running.wait_for(r"admin boss@example.com created")
        running.wait_for(r"listening on")
    finally:
        running.stop()
    assert "a-long-password" not in running.text()


async def test_admin_bootstrap_is_idempotent_and_promotes_an_existing_user(services, db, hasher, clock):
    accounts = services.accounts
    plain = await accounts.users.create(
        "Boss@Example.com", await hasher.hash("old-password"), clock(), is_verified=True
    )
    settings = load_settings(
        None, environ={"SECRET_KEY": "k", "ADMIN_EMAIL": "boss@example.com", "ADMIN_PASSWORD": "new-password"}
    )
    await server.bootstrap_admin(settings, accounts)
    await server.bootstrap_admin(settings, accounts)
    assert await db.users.count_documents({}) == 1
    user = await accounts.users.get(plain.id)
    assert user.is_staff and user.is_verified and user.is_active
    assert await hasher.check("old-password", user.password)


async def test_connect_warns_about_the_in_memory_database(caplog):
    settings = load_settings(None, environ={"SECRET_KEY": "k"})
    with caplog.at_level(logging.WARNING):
        database = await server.connect(settings)
    assert database.in_memory
    assert "IN-MEMORY DATABASE" in caplog.text
    assert await database.ping()


def test_createsuperuser_on_the_in_memory_database_refuses_and_says_what_to_do(config_file, caplog):
    code = server.main(
        ["--config", str(config_file), "createsuperuser", "--email", "a@b.co", "--password", "a-long-one"]
    )
    assert code == 1
    assert "in-memory database" in caplog.text and "ADMIN_EMAIL" in caplog.text
    assert "created" not in caplog.text


@pytest.fixture
def shared_uri(mongodb_uri) -> str:
    """A fresh database on a MongoDB other processes reach (TEST_MONGODB_URI, else the wire double)."""
    return database_uri(mongodb_uri, "server")


@pytest.fixture
def mongodb_env(monkeypatch, shared_uri):
    monkeypatch.setenv("MONGODB_URI", shared_uri)


def test_createsuperuser_creates_a_verified_staff_user_the_running_server_lets_in(config_file, shared_uri):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "server.py"),
            "--config",
            str(config_file),
            "createsuperuser",
            "--email",
            "root@example.com",
            "--password",
            "a-long-password",
        ],
        env=environment(MONGODB_URI=shared_uri),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "superuser root@example.com created" in proc.stdout
    running = Running("--config", str(config_file), "--port", "0", env=environment(MONGODB_URI=shared_uri))
    try:
        url = running.wait_for(r"listening on (http://\S+)").group(1)
        request = urllib.request.Request(
            f"{url}/api/accounts/login/",
            method="POST",
            headers={"Content-Type": "application/json"},
            data=json.dumps({"email": "root@example.com", "password": "a-long-password"}).encode(),
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            token = json.loads(response.read())["token"]
        me = urllib.request.Request(
            f"{url}/api/accounts/users/me/", headers={"Authorization": f"Token {token}"}
        )
        with urllib.request.urlopen(me, timeout=10) as response:
            assert json.loads(response.read())["is_staff"] is True
    finally:
        assert running.stop() == 0


def test_createsuperuser_prompts_for_what_is_missing(config_file, monkeypatch, capsys, mongodb_env):
    answers = iter(["a-long-password", "a-long-password"])
    monkeypatch.setattr("builtins.input", lambda prompt: "asked@example.com")
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert server.main(["--config", str(config_file), "createsuperuser"]) == 0
    assert "superuser asked@example.com created" in capsys.readouterr().out


def test_createsuperuser_refuses_a_short_password(config_file, capsys, caplog, mongodb_env):
    code = server.main(
        ["--config", str(config_file), "createsuperuser", "--email", "a@b.co", "--password", "x"]
    )
    assert code == 1
    assert "at least" in caplog.text


async def test_createsuperuser_hashes_the_password(db, services, hasher):
    accounts = services.accounts
    user, created = await accounts.ensure_superuser("x@example.com", "a-long-password")
    doc = await db.users.find_one({})
    assert created and doc["password"] != "a-long-password"
    assert await hasher.check("a-long-password", doc["password"])
    assert user.to_api()["is_staff"] is True


def test_password_hasher_accepts_any_length(io_loop):
    hasher = PasswordHasher(rounds=4)
    long_a, long_b = "a" * 100, "a" * 99 + "b"
    stored = io_loop.run_sync(lambda: hasher.hash(long_a))
    assert io_loop.run_sync(lambda: hasher.check(long_a, stored))
    assert not io_loop.run_sync(lambda: hasher.check(long_b, stored))
    hasher.close()


def test_sigterm_right_after_the_server_says_it_listens_stops_it_cleanly(config_file):
    running = Running("--port", "0", "--config", str(config_file))
    running.wait_for(r"listening on")
    code = running.stop(signal.SIGTERM)
    assert code == 0
    assert "stopped" in running.text()
