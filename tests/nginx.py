"""The real nginx for tests and benches: deploy/nginx/videoflix.conf.template rendered into a tmp prefix."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "nginx" / "videoflix.conf.template"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")

MAIN = """
worker_processes 1;
daemon off;
{user}
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 100000;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    default_type application/octet-stream;
    include {prefix}/videoflix.conf;
{extra}
}}
"""


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def render(values: dict[str, str], text: str | None = None) -> str:
    """What the nginx image's envsubst does: ${NAME} filled; a missing one is an error here."""
    text = TEMPLATE.read_text() if text is None else text
    missing = placeholders(text) - set(values)
    if missing:
        raise KeyError(f"the nginx template needs {sorted(missing)}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(prefix: Path, values: dict[str, str], extra: str = "") -> Path:
    """The rendered server block and a main nginx.conf around it, in `prefix`."""
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "videoflix.conf").write_text(render(values))
    main = prefix / "nginx.conf"
    user = "user root;" if os.geteuid() == 0 else ""  # tmp folders are 0700: workers must read them
    main.write_text(MAIN.format(prefix=prefix, user=user, extra=extra))
    return main


class Nginx:
    """nginx in the foreground on a loopback port; stopped (its own pid) on exit."""

    def __init__(self, prefix: Path, values: dict[str, str], port: int, extra: str = "") -> None:
        self.config = write_config(prefix, values, extra)
        self.prefix = prefix
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Nginx:
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.prefix), "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx did not start: {self.proc.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not listen within 10 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()


def check_config(prefix: Path, values: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on the rendered template."""
    config = write_config(prefix, values)
    return subprocess.run(
        [NGINX, "-t", "-p", str(prefix), "-c", str(config)], capture_output=True, text=True, timeout=30
    )
