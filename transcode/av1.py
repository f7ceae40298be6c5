"""AV1 rungs beside the H.264 ones: the SVT-AV1 command, its supervised run, and the rungs it made.

A follow-up pass, once the H.264 ladder is published (services/av1.py), so first playable never waits
for it. It decodes the source once more and writes one folder per rung (`av1-720p/`: init.mp4 +
seg_NNNNN.m4s + index.m3u8), no audio: the AV1 variants name the ladder's audio group. Key frames are
forced at the instants where the H.264 ladder's segments begin (read from its top rung's playlist), and
SVT-AV1 adds none of its own (`scd=0`, a key-frame interval longer than any segment), so the AV1
segments start where the H.264 ones do and a player may switch codec at any segment.

Listing: the AV1 rungs join the ladder's presentation record (transcode/presentation.py), and the
master and the MPD are written from it again, only once every one of them is whole; their CODECS
(`av01.…`) come from their own av1C: a player that cannot decode AV1 never sees a difference.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from transcode.cmaf import Rendition, read_rendition
from transcode.ffmpeg import input_args
from transcode.ladder import KEEP_TIMESTAMPS, EncodeSettings, Rung, hls_args
from transcode.manifests import SEGMENT, measure
from transcode.probe import MediaInfo
from transcode.worker import (
    CANCEL_FILE,
    CANCELLED,
    DONE,
    TRANSIENT,
    Outcome,
    Watch,
    _child_setup,
    cancelled_why,
    report,
    stop,
    supervise,
    tail,
)

AV1_STEM = "av1-"
AV1_CODEC = "av01"
# SVT-AV1 writes its banner to stderr whatever FFmpeg's log level; 1: errors only.
SVT_ENV = {"SVT_LOG": "1"}


def av1_folder(height: int) -> str:
    """The folder of the AV1 rung of that height, beside the H.264 `<height>p/` (services/media/keys.py)."""
    return f"{AV1_STEM}{height}p"


@dataclass(frozen=True)
class Av1Spec:
    """Everything an AV1 pass needs in a worker, picklable."""

    key: str
    ffmpeg: str
    source: str
    out_dir: str
    info: MediaInfo
    rungs: tuple[Rung, ...]
    preset: int
    crf: int
    segment_s: int
    cuts: tuple[float, ...]  # seconds at which the H.264 ladder's segments (after the first) begin
    timeout_s: float
    nice: int
    progress_interval_s: float = 0.5
    stall_s: float = 120.0
    max_pixels: int | None = None


def segment_starts(playlist: str) -> list[float]:
    """The start of every segment after the first, from a VOD playlist's EXTINF durations."""
    starts, at = [], 0.0
    for duration, _ in SEGMENT.findall(playlist)[:-1]:
        at += float(duration)
        starts.append(at)
    return starts


def key_frame_times(cuts: tuple[float, ...], fps: float) -> str:
    """-force_key_frames' list: each cut half a frame early, so the frame at the cut is the one forced
    whatever the rounding of the playlist's durations."""
    half = 0.5 / min(fps or 30.0, 60.0)
    return ",".join(f"{max(0.0, cut - half):.6f}" for cut in cuts) or "0"


def svt_args(rung: Rung, spec: Av1Spec) -> list[str]:
    """SVT-AV1 for one rung's output: capped CRF (the H.264 rung's cap), closed GOPs whose key frames
    are only the forced ones."""
    v = ":v"
    fps = min(spec.info.fps or 30.0, 60.0)
    longest = max([b - a for a, b in zip((0.0, *spec.cuts), spec.cuts, strict=False)] or [0.0])
    keyint = max(int(fps * max(longest, spec.info.duration, spec.segment_s)) + 2, 2)
    return [
        *f"-c{v} libsvtav1 -preset{v} {spec.preset} -crf{v} {spec.crf}".split(),
        *f"-maxrate{v} {rung.max_kbps}k -bufsize{v} {rung.max_kbps * 2}k -g{v} {keyint}".split(),
        *[f"-svtav1-params{v}", f"keyint={keyint}:irefresh-type=2:scd=0"],
        *[f"-force_key_frames{v}", key_frame_times(spec.cuts, fps)],
    ]


def av1_command(spec: Av1Spec) -> list[str]:
    """One FFmpeg over the source: a scaling cascade (top rung first), one SVT-AV1 output per rung."""
    rungs = list(spec.rungs)
    out_dir = Path(spec.out_dir)
    graph = [f"[0:v:0]format=yuv420p[c{len(rungs)}]"]
    for i in range(len(rungs) - 1, -1, -1):
        rung = rungs[i]
        scaled = f"[c{i + 1}]scale={rung.width}:{rung.height}:flags=bicubic,setsar=1"
        graph.append(f"{scaled},split=2[v{i}][c{i}]" if i > 0 else f"{scaled}[v{i}]")
    args = [
        spec.ffmpeg,
        *["-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-progress", "pipe:1", "-nostats"],
        *input_args(spec.source, spec.info.container, spec.max_pixels),
        *["-filter_complex", ";".join(graph)],
    ]
    hls = EncodeSettings(segment_s=spec.segment_s)
    for i, rung in enumerate(rungs):
        args += ["-map", f"[v{i}]", *svt_args(rung, spec), *KEEP_TIMESTAMPS]
        args += hls_args(hls, out_dir / av1_folder(rung.height))
    return args


def encode_av1(spec: Av1Spec) -> Outcome:
    """Run the AV1 pass in a pool worker and supervise it: progress, stalls, cancellation, timeout.
    DONE only when every rung's playlist is whole (VOD, EXT-X-ENDLIST)."""
    started = time.monotonic()
    out_dir = Path(spec.out_dir)
    folders = [av1_folder(rung.height) for rung in spec.rungs]
    for name in folders:  # the run's own scratch: a stop asked before the worker started (CANCEL) stays
        shutil.rmtree(out_dir / name, ignore_errors=True)
        (out_dir / name).mkdir(parents=True, exist_ok=True)
    log_path, cancel_path = out_dir / "ffmpeg.log", out_dir / CANCEL_FILE
    if cancel_path.exists():
        return Outcome(CANCELLED, cancelled_why(cancel_path))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            av1_command(spec),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            env={**os.environ, **SVT_ENV},
            preexec_fn=lambda: _child_setup(spec.nice),
        )
    report(spec.key, "pid", proc.pid)
    assert proc.stdout is not None
    try:
        stopped = supervise(
            proc,
            Watch.of(spec, started, out_dir),
            stalled=lambda _: f"The AV1 encode made no progress for {spec.stall_s:g} s.",
        )
        if stopped is not None:
            return stopped
        code = proc.wait()
    finally:
        stop(proc)
        proc.stdout.close()
    if cancel_path.exists() or not out_dir.exists():
        return Outcome(CANCELLED, cancelled_why(cancel_path))
    if code != 0:
        reason = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        detail = tail(log_path)
        return Outcome(TRANSIENT, f"FFmpeg failed ({reason}){': ' + detail if detail else '.'}")
    unfinished = [name for name in folders if "#EXT-X-ENDLIST" not in _read(out_dir / name / "index.m3u8")]
    if unfinished:
        return Outcome(TRANSIENT, f"FFmpeg finished without writing {', '.join(unfinished)}.")
    for name in folders:
        _to_vod(out_dir / name / "index.m3u8")
    log_path.unlink(missing_ok=True)
    report(spec.key, "progress", 100)
    return Outcome(DONE, seconds=time.monotonic() - started)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _to_vod(playlist: Path) -> None:
    """FFmpeg ends an EVENT playlist with EXT-X-ENDLIST but keeps its type: make it VOD."""
    text = playlist.read_text()
    playlist.write_text(text.replace("#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-PLAYLIST-TYPE:VOD"))


def read_av1_rungs(out_dir: Path, heights: list[int]) -> list[Rendition]:
    """The finished AV1 rungs: tracks from their init segments, times from their fragments, bitrates
    measured over their segments."""
    found = []
    for height in heights:
        folder = out_dir / av1_folder(height)
        playlist = folder / "index.m3u8"
        peak, average = measure(playlist)
        names = [name for _, name in SEGMENT.findall(playlist.read_text())]
        found.append(read_rendition(folder, names, peak, average))
    return found


def rung_files(out_dir: Path, folders: list[str]) -> list[tuple[Path, str]]:
    """Every file of these rung folders as `(path, name inside the ladder)`."""
    return [
        (path, f"{folder}/{path.name}")
        for folder in folders
        for path in sorted((out_dir / folder).iterdir())
        if path.is_file() and not path.name.startswith(".")
    ]
