"""Shared by the benches: a server.py process on a free port, latency figures, and table printing."""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ServerProcess:
    """`python server.py --port 0` with the given environment; stopped with SIGTERM."""

    def __init__(self, env: dict[str, str], config: Path | None = None) -> None:
        args = [sys.executable, str(ROOT / "server.py"), "--port", "0"]
        if config:
            args += ["--config", str(config)]
        # The log goes to a file: a pipe nobody drains would stall the server once it filled up.
        self.log = tempfile.NamedTemporaryFile("w+", prefix="videoflix-bench-", suffix=".log")  # noqa: SIM115 (lives as long as the server)
        self.proc = subprocess.Popen(
            args, env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT, text=True
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            match = re.search(r"listening on (http://\S+)", Path(self.log.name).read_text())
            if match:
                self.url = match.group(1)
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("server did not start")
        if self.proc.poll() is not None:
            raise RuntimeError(f"server exited: {Path(self.log.name).read_text()}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.log.close()


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of the samples."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(samples_ms: Sequence[float]) -> tuple[float, float, float]:
    """p50, p99 and max in milliseconds."""
    return statistics.median(samples_ms), percentile(samples_ms, 99), max(samples_ms)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    cells = [[str(c) for c in headers]] + [
        [f"{c:.1f}" if isinstance(c, float) else str(c) for c in r] for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)


def lavfi_clip(
    path: Path,
    size: str,
    seconds: float,
    *,
    audio: bool = True,
    bitrate: str | None = None,
    faststart: bool = False,
    audio_codec: str = "aac",
) -> Path:
    """An H.264 clip of FFmpeg's moving test pattern (with a tone when `audio`), as a bench source."""
    from transcode.ffmpeg import ffmpeg_binary

    args = [
        ffmpeg_binary(),
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate=30:duration={seconds}",
    ]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", audio_codec]
        args += ["-shortest"]
    args += ["-c:v", "libx264", "-preset", "fast", "-pix_fmt", "yuv420p"]
    args += ["-b:v", bitrate] if bitrate else []
    args += ["-movflags", "+faststart"] if faststart else []
    subprocess.run([*args, str(path)], check=True)
    return path
