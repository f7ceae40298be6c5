"""What probing a source costs: PyAV in a limited child process (the app's probe) against the commands it
replaced, measured in the same run: Debian's ffprobe (when it is on PATH) and the pip FFmpeg's `-i`
report (the log text the app parsed when there was no ffprobe).

Per clip: the median wall time of the probe (`transcode.probe.probe`) and of the packet scans the remux
decision reads (`max_keyframe_gap` + `audio_start_gap`), each against the old commands with the same
options, and the peak resident memory of each process (its rusage, from `os.wait4`).

    .venv/bin/python bench/probe.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from transcode.ffmpeg import ffmpeg_binary, input_args
from transcode.probe import (
    RATE_PACKETS,
    SourceLimits,
    audio_start_gap,
    child_command,
    max_keyframe_gap,
    probe,
)

from common import lavfi_clip, table


def peak_kb(args: list[str]) -> int:
    """The peak resident set of one run of `args`, in KiB."""
    proc = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return usage.ru_maxrss


def median_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def old_ffprobe(ffprobe: str, source: Path) -> list[str]:
    """The old probe's ffprobe command."""
    return [
        *[ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams"],
        *["-show_entries", "packet=stream_index,pts_time", "-read_intervals", f"%+#{RATE_PACKETS}"],
        *input_args(str(source)),
    ]


def old_scans(ffprobe: str, source: Path) -> list[list[str]]:
    """The old packet scans: every keyframe of v:0, then the first 8 packets of v:0 and of a:0."""
    keys = [
        ffprobe,
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "packet=pts_time,dts_time,flags",
    ]
    starts = [
        [ffprobe, "-v", "error", "-select_streams", stream, "-read_intervals", "%+#8"]
        for stream in ("v:0", "a:0")
    ]
    entries = ["packet=pts_time,dts_time,flags", "packet=pts_time", "packet=pts_time"]
    return [
        [*args, "-show_entries", shown, "-of", "csv=p=0", *input_args(str(source))]
        for args, shown in zip([keys, *starts], entries, strict=True)
    ]


def run_all(commands: list[list[str]]) -> None:
    for args in commands:
        subprocess.run(args, capture_output=True, check=False)


def measure(source: Path, repeat: int, ffprobe: str | None) -> tuple[list[object], list[object]]:
    """One clip's row of times and row of peak memory."""
    limits = SourceLimits()
    container = asyncio.run(probe(source, limits=limits)).container
    log_args = [ffmpeg_binary(), "-hide_banner", "-nostdin", *input_args(str(source))]
    new = median_ms(lambda: asyncio.run(probe(source, limits=limits)), repeat)
    log = median_ms(lambda: subprocess.run(log_args, capture_output=True), repeat)
    scans = median_ms(
        lambda: (max_keyframe_gap(source, 20, container=container), audio_start_gap(source, container)),
        repeat,
    )
    old = old_scan = 0.0
    if ffprobe:
        old = median_ms(lambda: subprocess.run(old_ffprobe(ffprobe, source), capture_output=True), repeat)
        old_scan = median_ms(lambda: run_all(old_scans(ffprobe, source)), repeat)
    times: list[object] = [new, old or "-", f"{new / old:.2f}x" if old else "-", log, f"{new / log:.2f}x"]
    times += [scans, old_scan or "-", f"{scans / old_scan:.2f}x" if old_scan else "-"]
    child = child_command("info", source, "", "--max-pixels", str(limits.decoder_max_pixels))
    memory: list[object] = [peak_kb(child) // 1024]
    memory += [peak_kb(old_ffprobe(ffprobe, source)) // 1024 if ffprobe else "-", peak_kb(log_args) // 1024]
    return times, memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    ffprobe = shutil.which("ffprobe")
    rows, memory = [], []
    with tempfile.TemporaryDirectory(prefix="videoflix-probe-bench-") as folder:
        clips = {
            "360p 2 s MP4": lavfi_clip(Path(folder) / "a.mp4", "640x360", 2),
            "1080p 10 s MP4": lavfi_clip(Path(folder) / "b.mp4", "1920x1080", 10),
            "1080p 10 s MKV": lavfi_clip(Path(folder) / "c.mkv", "1920x1080", 10),
            "720p 10 s MPEG-TS": lavfi_clip(Path(folder) / "d.ts", "1280x720", 10),
        }
        for name, source in clips.items():
            times, peaks = measure(source, options.repeat, ffprobe)
            rows.append([name, *times])
            memory.append([name, *peaks])
    print(f"Probe wall time, median of {options.repeat} (ms); ratio: PyAV child / the old command")
    headers = ["clip", "PyAV child", "ffprobe", "ratio", "ffmpeg -i log", "ratio"]
    print(table([*headers, "scans PyAV", "scans ffprobe", "ratio"], rows))
    print("\nPeak resident memory of one probe process (MiB)")
    print(table(["clip", "PyAV child", "ffprobe", "ffmpeg -i log"], memory))


if __name__ == "__main__":
    main()
