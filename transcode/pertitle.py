"""Per-title CRF: the CRF that gives a title's top rung a target VMAF, found by a short probe.

One CRF for every title gives easy content (animation, slides) far more bits than it needs and starves
hard content (grain, foliage). The probe encodes a few sampled seconds of the top rung at two CRFs, with
the rung's own encoder options, caps and keyframes, measures each with libvmaf (vmaf_v0.6.1) against
the source scaled to the rung, and interpolates the CRF that reaches the target; the whole ladder of
that codec is then encoded at it (the rung caps stay the ceiling).

It is codec-generic: `choose_crf` takes the codec's encoder options for a CRF (`encoder(crf)`) and its
`CrfProbe` (the CRFs tried, the clamp). H.264 passes x264_args + gop_args; the AV1 job passes its
libsvtav1 options with PROBES["av1"].

The probe is one FFmpeg process, which opens only the upload (`input_args`): the sampled windows are
decoded once, scaled to the rung and concatenated; each CRF's encoder output is decoded again inside
the same process (a loopback decoder, `-dec`) and compared with the reference frames by libvmaf. No
intermediate file is written but libvmaf's JSON logs, in the probe's own folder.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transcode.ffmpeg import input_args
from transcode.probe import MediaInfo

# libvmaf's model and how often it scores a frame (every 3rd: 1080p 10 s in 11 s instead of 27 s, within
# 0.02 of every frame: docs/research/cmaf/REPORT.md §3).
VMAF_MODEL = "version=vmaf_v0.6.1"
VMAF_SUBSAMPLE = 3
# Sampled windows: three of two seconds, spread over the title (a quarter, half, three quarters in).
WINDOWS = 3
WINDOW_S = 2.0
# A fit that lands further than this past the probed CRFs is measured there once more (a third point);
# then, for such a title far from the usual, the fit is followed until it lands on a CRF measured, at
# most MAX_REFINES passes in all (a steep curve: flat animation goes from VMAF 99 to 90 in three CRFs).
REFINE_BEYOND = 3
MAX_REFINES = 3
# 100 - VMAF never taken below this (a saturated score would give log(0)).
VMAF_HEADROOM_FLOOR = 0.05


@dataclass(frozen=True)
class CrfProbe:
    """How one codec's CRF is probed: the CRFs encoded, and the range a choice is clamped to: [lo, hi]
    for the top rung, which is measured, and at most `lower_hi` for the rungs below it, which are not
    (they keep to the range the quality bench checked them in)."""

    codec: str
    crfs: tuple[int, ...]
    lo: int
    hi: int
    lower_hi: int

    def below_top(self, crf: int) -> int:
        """The CRF of the rungs below the top one when the top one's is `crf`."""
        return min(crf, self.lower_hi)


# The CRFs bracket where VMAF 93 falls on most content at the top rung (REPORT.md §5: x264 veryfast
# 25-26 on camera and synthetic; SVT-AV1 preset 10 between 42 and 55). Flat animation keeps x264's top
# rung near VMAF 100 up to CRF 33 and reaches 93 about 35 (docs/quality.md), hence a top rung up to 40;
# its smaller rungs at that CRF fall to VMAF 65-75 (the pixel detail of a downscale costs more), so they
# stay at 30 and below, as before the top rung's range was widened.
PROBES = {
    "h264": CrfProbe("h264", (22, 28), 16, 40, 30),
    "av1": CrfProbe("av1", (36, 50), 20, 55, 55),
}


@dataclass(frozen=True)
class Choice:
    """What a probe chose for one codec: the CRF, the target, what it measured, what it cost."""

    codec: str
    crf: int
    target_vmaf: float
    points: tuple[tuple[int, float], ...]  # (CRF, VMAF) measured on the sampled seconds
    probe_s: float
    estimated_vmaf: float  # what the fit says the chosen CRF gives

    def to_doc(self) -> dict[str, Any]:
        """The fields the video document keeps, under `encoding` (one codec's beside the others')."""
        return {
            f"crf.{self.codec}": self.crf,
            "target_vmaf": self.target_vmaf,
            f"probe.{self.codec}": {
                "points": [{"crf": c, "vmaf": round(v, 2)} for c, v in self.points],
                "vmaf": round(self.estimated_vmaf, 2),
                "seconds": round(self.probe_s, 2),
            },
        }


class ProbeFailed(Exception):
    """The probe could not choose: the caller keeps the fixed CRF."""


def window_starts(duration: float, windows: int = WINDOWS, window_s: float = WINDOW_S) -> list[float]:
    """Where the sampled windows start: spread evenly (at 1/(k+1), 2/(k+1)... of the title, centred
    there), each inside the title; one window of the whole title when it is shorter than all of them."""
    if duration <= windows * window_s:
        return [0.0]
    starts = []
    for i in range(windows):
        centre = duration * (i + 1) / (windows + 1)
        starts.append(round(min(max(0.0, centre - window_s / 2), duration - window_s), 3))
    return starts


def _headroom(vmaf: float) -> float:
    return math.log(max(100.0 - vmaf, VMAF_HEADROOM_FLOOR))


def crf_for_target(points: Sequence[tuple[int, float]], target: float, lo: int, hi: int) -> tuple[int, float]:
    """The CRF that gives `target`, and the VMAF the fit expects at it. log(100 - VMAF) is close to
    linear in CRF (each step of CRF loses a fixed share of the remaining headroom, so a saturated title
    stays near 100): the fit is linear between the two points around the target, else through the
    nearest pair, rounded and clamped to [lo, hi]. A curve that does not fall with CRF (noise on a
    saturated title) gives `hi` when every point beats the target, else `lo`."""
    pts = sorted(points)
    if len(pts) < 2:
        raise ProbeFailed("a probe needs two CRFs")
    goal = _headroom(target)
    pair = pts[-2:]
    for a, b in itertools.pairwise(pts):
        if _headroom(a[1]) <= goal <= _headroom(b[1]):
            pair = [a, b]
            break
    else:
        if goal < _headroom(pts[0][1]):
            pair = pts[:2]
    (c1, v1), (c2, v2) = pair
    slope = (_headroom(v2) - _headroom(v1)) / (c2 - c1)
    if slope <= 1e-6:
        crf = hi if min(v for _, v in pts) >= target else lo
    else:
        crf = min(max(round(c1 + (goal - _headroom(v1)) / slope), lo), hi)
    estimate = 100.0 - math.exp(_headroom(v1) + slope * (crf - c1)) if slope > 1e-6 else v1
    return crf, min(100.0, estimate)


def refine_wanted(points: Sequence[tuple[int, float]], crf: int, probed: Sequence[int]) -> bool:
    """Whether the fit's `crf` is measured once more: after the first probe, when it lies more than
    REFINE_BEYOND past the CRFs probed (a title far from the usual); after a refine, whenever it is not a
    CRF measured yet (the fit is followed until it lands on one)."""
    if crf in {c for c, _ in points}:
        return False
    if len(points) <= len(probed):
        return not min(probed) - REFINE_BEYOND <= crf <= max(probed) + REFINE_BEYOND
    return True


def vmaf_filter(distorted: str, reference: str, log_name: str, subsample: int = VMAF_SUBSAMPLE) -> str:
    """libvmaf comparing two labelled streams, timestamps reset on both sides (an encode with B-frames
    starts late by its delay, and libvmaf pairs frames by timestamp); the JSON log goes to `log_name`
    in FFmpeg's working folder (a bare name: nothing to escape in the graph)."""
    return (
        f"[{distorted}]format=yuv420p,setpts=PTS-STARTPTS[{distorted}t];"
        f"[{reference}]setpts=PTS-STARTPTS[{reference}t];"
        f"[{distorted}t][{reference}t]libvmaf=model={VMAF_MODEL}:n_threads=2:n_subsample={subsample}"
        f":log_fmt=json:log_path={log_name}"
    )


def parse_vmaf_log(text: str) -> float:
    """The pooled mean VMAF of a libvmaf JSON log."""
    return float(json.loads(text)["pooled_metrics"]["vmaf"]["mean"])


def _reference(starts: Sequence[float], width: int, height: int) -> str:
    """The graph that scales every window to the rung (bicubic, as the ladder scales) and joins them."""
    chains = [
        f"[{i}:v:0]scale={width}:{height}:flags=bicubic,setsar=1,format=yuv420p,setpts=PTS-STARTPTS[w{i}]"
        for i in range(len(starts))
    ]
    joined = "".join(f"[w{i}]" for i in range(len(starts)))
    return ";".join(chains) + f";{joined}concat=n={len(starts)}:v=1:a=0"


def probe_command(
    ffmpeg: str,
    source: Path,
    info: MediaInfo,
    width: int,
    height: int,
    encoder: Callable[[int], list[str]],
    crfs: Sequence[int],
    *,
    max_pixels: int | None = None,
    windows: int = WINDOWS,
    window_s: float = WINDOW_S,
    subsample: int = VMAF_SUBSAMPLE,
) -> list[str]:
    """The probe's one FFmpeg (run in its own folder: the logs are `vmaf-<crf>.json` there): the
    windows, each opened as every source is, encoded at each CRF, each encode decoded back (`-dec`) and
    scored against the same windows (decoded once; two graphs share the decoders' frames)."""
    starts = window_starts(info.duration, windows, window_s)
    length = window_s if len(starts) > 1 else max(info.duration, window_s)
    args = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-nostats"]
    for start in starts:
        args += [
            "-ss",
            f"{start:.3f}",
            "-t",
            f"{length:.3f}",
            *input_args(str(source), info.container, max_pixels),
        ]
    n = len(crfs)
    reference = _reference(starts, width, height)
    args += ["-filter_complex", f"{reference},split={n}" + "".join(f"[e{i}]" for i in range(n))]
    for i, crf in enumerate(crfs):
        args += ["-map", f"[e{i}]", *encoder(crf), "-an", "-f", "null", "-"]
    for i in range(n):
        args += ["-dec", f"{i}:0"]
    scores = [
        vmaf_filter(f"dec:{i}", f"r{i}", f"vmaf-{crf}.json", subsample) + f"[o{i}]"
        for i, crf in enumerate(crfs)
    ]
    graph = f"{reference},split={n}" + "".join(f"[r{i}]" for i in range(n)) + ";" + ";".join(scores)
    args += ["-filter_complex", graph]
    for i in range(n):
        args += ["-map", f"[o{i}]", "-f", "null", "-"]
    return args


def choose_crf(
    ffmpeg: str,
    source: Path,
    info: MediaInfo,
    width: int,
    height: int,
    encoder: Callable[[int], list[str]],
    probe: CrfProbe,
    target_vmaf: float,
    work: Path,
    *,
    max_pixels: int | None = None,
    timeout_s: float = 600.0,
    should_stop: Callable[[], bool] = lambda: False,
    preexec_fn: Callable[[], None] | None = None,
) -> Choice:
    """Run the probe for one codec at a rung of `width` x `height` and choose its CRF. When the fit
    reaches more than REFINE_BEYOND past the probed CRFs, one more pass measures the CRF it reached and
    the fit is made again around it, and so on (`refine_wanted`, at most MAX_REFINES passes: only for
    titles far from the usual). `work` is a
    folder of its own (made, then removed). Raises ProbeFailed when FFmpeg fails, takes longer than
    `timeout_s` in all, is asked to stop (`should_stop`, looked at a few times a second) or scores
    nothing."""
    started = time.monotonic()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    def measure(crfs: Sequence[int]) -> list[tuple[int, float]]:
        args = probe_command(ffmpeg, source, info, width, height, encoder, crfs, max_pixels=max_pixels)
        _run(args, work, started + timeout_s, should_stop, preexec_fn)
        try:
            return [(crf, parse_vmaf_log((work / f"vmaf-{crf}.json").read_text())) for crf in crfs]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ProbeFailed(f"no VMAF score: {err}") from err

    try:
        points = measure(probe.crfs)
        crf, estimate = crf_for_target(points, target_vmaf, probe.lo, probe.hi)
        for _ in range(MAX_REFINES):
            if not refine_wanted(points, crf, probe.crfs):
                break
            points += measure([crf])
            crf, estimate = crf_for_target(points, target_vmaf, probe.lo, probe.hi)
        return Choice(
            probe.codec, crf, target_vmaf, tuple(sorted(points)), time.monotonic() - started, estimate
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(
    args: list[str],
    work: Path,
    deadline: float,
    should_stop: Callable[[], bool],
    preexec_fn: Callable[[], None] | None,
) -> None:
    """One probe FFmpeg in `work`, stopped at `deadline` or when asked; ProbeFailed unless it succeeds."""
    with open(work / "ffmpeg.log", "wb") as log:
        proc = subprocess.Popen(
            args,
            cwd=work,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            preexec_fn=preexec_fn,
        )
    try:
        while proc.poll() is None:
            if should_stop():
                raise ProbeFailed("the job was asked to stop")
            if time.monotonic() > deadline:
                raise ProbeFailed("the probe took longer than its time limit")
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.25)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        detail = (work / "ffmpeg.log").read_text(errors="replace").strip().splitlines()[-3:]
        raise ProbeFailed(f"FFmpeg exit status {proc.returncode}: {' '.join(detail)[:300]}")


def vmaf_score(
    ffmpeg: str,
    distorted: Path,
    source: Path,
    info: MediaInfo,
    width: int,
    height: int,
    *,
    work: Path,
    subsample: int = VMAF_SUBSAMPLE,
    max_pixels: int | None = None,
) -> float:
    """The VMAF of a whole encoded rung (a file FFmpeg reads) against the whole source scaled to it, as
    the probe scores its samples (tests and benches check a choice with it)."""
    work.mkdir(parents=True, exist_ok=True)
    log = f"vmaf-check-{os.getpid()}.json"
    graph = (
        f"[1:v:0]scale={width}:{height}:flags=bicubic,setsar=1,format=yuv420p[ref];"
        f"[0:v:0]null[dist];{vmaf_filter('dist', 'ref', log, subsample)}"
    )
    args = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i", str(distorted)]
    args += [
        *input_args(str(source), info.container, max_pixels),
        "-filter_complex",
        graph,
        "-f",
        "null",
        "-",
    ]
    subprocess.run(args, cwd=work, check=True, capture_output=True, timeout=600)
    try:
        return parse_vmaf_log((work / log).read_text())
    finally:
        (work / log).unlink(missing_ok=True)
