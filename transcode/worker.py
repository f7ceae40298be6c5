"""What runs inside a pool process: one FFmpeg per job, supervised, reporting back to the server.

Workers never touch MongoDB (with memory:// they could not see it): they send progress through a queue
that the server reads, and return an Outcome. They are started with `spawn`, and die with the server:
the kernel kills a worker when its parent dies, and an FFmpeg when its worker dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import faulthandler
import logging
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from transcode.audio import LOG as AUDIO_LOG
from transcode.audio import AudioRendition
from transcode.ladder import (
    AUDIO,
    EncodeSettings,
    Rung,
    can_copy_audio,
    can_remux,
    ffmpeg_command,
    gop_args,
    renditions,
    storyboard_for,
    x264_args,
)
from transcode.manifests import (
    encoded_seconds,
    finish_playlists,
    first_segments_ready,
    provisional_master,
    write_manifests,
)
from transcode.pertitle import PROBES, ProbeFailed, choose_crf
from transcode.probe import MediaInfo, audio_start_gap, max_keyframe_gap

log = logging.getLogger("videoflix.transcode")

PR_SET_PDEATHSIG = 1
CANCEL_FILE = "CANCEL"
# Outcome kinds: the runner retries TRANSIENT, fails INVALID at once, and hands CANCELLED back.
DONE, TRANSIENT, INVALID, CANCELLED = "done", "transient", "invalid", "cancelled"

_events: Any = None  # the queue to the server, set by init_worker


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs, picklable."""

    key: str
    ffmpeg: str
    source: str
    out_dir: str
    info: MediaInfo
    rungs: tuple[Rung, ...]
    settings: EncodeSettings
    timeout_s: float
    nice: int
    progress_interval_s: float = 0.5
    remux: bool = True  # copy what is already good: the video as the top rung, the AAC into every rung
    stall_s: float = 120.0  # FFmpeg is stopped once its output has not advanced for this long
    max_pixels: int | None = None  # decoders refuse a larger picture (one a later frame may claim)
    target_vmaf: float | None = None  # per-title CRF: the top rung's VMAF to aim at; None: the fixed CRF
    per_title_min_s: float = 0.0  # ... for sources at least this long (the probe's cost is fixed)


@dataclass
class Outcome:
    """How a job ended; on success the renditions of the master playlist."""

    kind: str
    error: str | None = None
    renditions: list[dict[str, int]] = field(default_factory=list)
    seconds: float = 0.0
    encoding: dict[str, Any] = field(default_factory=dict)  # the video's `encoding.*` fields (CRF chosen)


def _find_prctl() -> Any:
    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL(None, use_errno=True).prctl
    return None


# Looked up once, at import: die_with_parent runs in a forked child before it execs FFmpeg, where only
# the forking thread exists; a dlopen or symbol lookup there could wait on a loader lock that another
# thread of the worker (the audio rendition's, the event queue's feeder) held at the fork.
_PRCTL = _find_prctl()


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux); elsewhere a no-op."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def init_worker(events: Any, parent_pid: int) -> None:
    """Pool initializer: remember the queue, die with the server, leave SIGINT to the server. SIGUSR1
    prints every thread's stack to the server's stderr (where a worker that seems stuck waits)."""
    global _events
    _events = events
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    die_with_parent()
    if os.getppid() != parent_pid:  # the server died before we could ask
        os._exit(1)


def report(key: str, kind: str, value: Any) -> None:
    """Send an event to the server; never block the encode for it."""
    if _events is not None:
        with contextlib.suppress(Exception):
            _events.put_nowait((key, kind, value))


def _child_setup(nice: int) -> None:
    os.nice(nice)
    die_with_parent()


def tail(path: Path, lines: int = 6) -> str:
    """The last lines of FFmpeg's error log, for the video's `error`."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " ".join(line.strip() for line in text[-lines:])[:500]


def stop(proc: subprocess.Popen) -> None:
    """Terminate FFmpeg, and kill it if it does not go within a second."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cancelled_why(cancel_path: Path) -> str:
    """The reason the server wrote in the cancel file ("shutdown" hands the job back)."""
    try:
        return cancel_path.read_text().strip() or "cancelled"
    except OSError:
        return "cancelled"


def audio_stalled(spec: JobSpec, audio: AudioRendition) -> str | None:
    """The error of a job whose audio rendition has not moved on for spec.stall_s; None while it does."""
    if audio.done or time.monotonic() - audio.advanced_at() <= spec.stall_s:
        return None
    return f"FFmpeg encoded no audio for {spec.stall_s:g} s and was stopped."


def stalled(spec: JobSpec, done_s: float) -> str:
    """The error of an encode whose output stopped advancing."""
    of = f" of {spec.info.duration:.1f} s" if spec.info.duration > 0 else ""
    return f"FFmpeg encoded nothing new for {spec.stall_s:g} s (stuck at {done_s:.1f} s{of}) and was stopped."


def audio_rendition(spec: JobSpec, out_dir: Path) -> AudioRendition:
    """The audio rendition's FFmpegs (transcode/audio.py), run beside the ladder's: measured, then
    brought to the loudness target, or copied when the source's AAC may be and already sits there."""
    source = Path(spec.source)
    return AudioRendition(
        spec.ffmpeg,
        spec.source,
        out_dir / AUDIO,
        spec.settings,
        target_lufs=spec.settings.loudness_lufs,
        copyable=lambda: (
            spec.remux
            and can_copy_audio(spec.info, spec.settings, lambda: audio_start_gap(source, spec.info.container))
        ),
        container=spec.info.container,
        max_pixels=spec.max_pixels,
        sample_rate=spec.info.audio_rate if spec.info.audio_rate in (44100, 48000) else 48000,
        preexec=lambda: _child_setup(spec.nice),
    )


def announce_playable(spec: JobSpec, out_dir: Path) -> bool:
    """Once every rendition has a whole segment, write the provisional master and tell the server the
    video can be played; whether it was."""
    rungs = list(spec.rungs)
    if not first_segments_ready(out_dir, rungs, spec.info.has_audio):
        return False
    language = spec.info.audio_language or "und"
    listed = provisional_master(out_dir, rungs, spec.info.has_audio, spec.info.fps, spec.settings, language)
    report(spec.key, "playable", {"renditions": listed})
    return True


def wait_for_audio(
    audio: AudioRendition, spec: JobSpec, cancel_path: Path, out_dir: Path, deadline: float, playable: bool
) -> Outcome | None:
    """Once the video is written, wait for the audio rendition (usually long done; a short clip's
    audio, measured first, may end after its video), announcing the ladder playable meanwhile if it was
    not yet; an Outcome if the job ends otherwise."""
    while not audio.done:
        audio.join(0.25)
        if not playable:
            playable = announce_playable(spec, out_dir)
        if cancel_path.exists() or not out_dir.exists():
            return Outcome(CANCELLED, cancelled_why(cancel_path))
        if time.monotonic() > deadline:
            return Outcome(TRANSIENT, f"FFmpeg took longer than {spec.timeout_s:.0f} s and was stopped.")
        if (stuck := audio_stalled(spec, audio)) is not None:
            return Outcome(TRANSIENT, stuck)
    if audio.error:
        return Outcome(TRANSIENT, audio.error)
    if not playable:
        announce_playable(spec, out_dir)
    return None


@dataclass(frozen=True)
class Watch:
    """What a supervised FFmpeg is held to: its job (progress goes to it), the source's duration, how
    often progress is reported, how long its output may stand still, the job's time limit counted from
    `started` (time.monotonic), and its scratch folder (a CANCEL file there, or the folder gone, stops
    it)."""

    key: str
    duration: float
    progress_interval_s: float
    stall_s: float
    timeout_s: float
    started: float
    out_dir: Path

    @classmethod
    def of(cls, spec: Supervised, started: float, out_dir: Path) -> Watch:
        """The watch a job's spec asks for (JobSpec, transcode/av1.py's Av1Spec)."""
        return cls(
            spec.key,
            spec.info.duration,
            spec.progress_interval_s,
            spec.stall_s,
            spec.timeout_s,
            started,
            out_dir,
        )


class Supervised(Protocol):
    """What a job's spec tells its supervisor."""

    @property
    def key(self) -> str: ...
    @property
    def info(self) -> MediaInfo: ...
    @property
    def progress_interval_s(self) -> float: ...
    @property
    def stall_s(self) -> float: ...
    @property
    def timeout_s(self) -> float: ...


def supervise(
    proc: subprocess.Popen[bytes],
    watch: Watch,
    *,
    stalled: Callable[[float], str],
    encoded: Callable[[], float] = lambda: 0.0,
    check: Callable[[], Outcome | None] = lambda: None,
) -> Outcome | None:
    """Follow an FFmpeg run with `-progress pipe:1` until its output closes. Its encoded seconds are the
    larger of FFmpeg's own report and `encoded()` (the segments listed), read each progress interval;
    the percentage reported never goes back. None when FFmpeg ended on its own (its exit code is the
    caller's to read); otherwise, with FFmpeg stopped, why: cancelled (or the folder deleted), `check`
    said so (asked each turn, a few times a second), past the deadline, or encoded nothing new for
    `stall_s` (`stalled(done_s)` says it), whatever the deadline."""
    assert proc.stdout is not None
    last_report, buffer, percent = time.monotonic(), b"", 1
    done_s, advanced_at = 0.0, time.monotonic()
    cancel_path = watch.out_dir / CANCEL_FILE
    while True:
        ready, _, _ = select.select([proc.stdout], [], [], 0.25)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                return None
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.startswith(b"out_time_us="):
                    with contextlib.suppress(ValueError):
                        reported = int(line.split(b"=", 1)[1]) / 1e6
                        if reported > done_s:
                            done_s, advanced_at = reported, time.monotonic()
        now = time.monotonic()
        if now - last_report >= watch.progress_interval_s:
            written = encoded()
            if written > done_s:
                done_s, advanced_at = written, now
            if watch.duration > 0:
                percent = max(percent, min(99, int(100 * done_s / watch.duration)))
            report(watch.key, "progress", percent)
            last_report = now
        if cancel_path.exists() or not watch.out_dir.exists():  # asked to stop, or the video was deleted
            outcome = Outcome(CANCELLED, cancelled_why(cancel_path))
        elif (checked := check()) is not None:
            outcome = checked
        elif now > watch.started + watch.timeout_s:
            outcome = Outcome(TRANSIENT, f"FFmpeg took longer than {watch.timeout_s:.0f} s and was stopped.")
        elif now - advanced_at > watch.stall_s:
            outcome = Outcome(TRANSIENT, stalled(done_s))
        else:
            continue
        stop(proc)
        return outcome


def transcode(spec: JobSpec) -> Outcome:
    """Run the ladder's FFmpeg for one job and supervise it: progress, stalls, cancellation, timeout."""
    started = time.monotonic()
    out_dir = Path(spec.out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    has_audio = spec.info.has_audio
    folders = renditions(list(spec.rungs), has_audio)
    for name in folders:
        (out_dir / name).mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "ffmpeg.log"
    cancel_path = out_dir / CANCEL_FILE
    rungs = list(spec.rungs)
    remux = spec.remux and can_remux(
        spec.info,
        rungs,
        spec.settings,
        lambda: max_keyframe_gap(Path(spec.source), spec.info.duration, container=spec.info.container),
    )
    settings, encoding = h264_crf(spec, rungs, remux, out_dir, cancel_path)
    args = ffmpeg_command(
        spec.ffmpeg,
        Path(spec.source),
        out_dir,
        spec.info,
        rungs,
        settings,
        remux,
        max_pixels=spec.max_pixels,
    )
    audio = audio_rendition(spec, out_dir) if has_audio else None
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            preexec_fn=lambda: _child_setup(spec.nice),
        )
    report(spec.key, "pid", proc.pid)
    if audio is not None:
        audio.start()
    report(spec.key, "progress", 1)  # FFmpeg runs: the video shows it moves at once
    deadline = started + spec.timeout_s
    playable = False

    def check() -> Outcome | None:
        """Each turn: announce the ladder playable once it is; stop the job if its audio failed or stalled."""
        nonlocal playable
        if not playable:
            playable = announce_playable(spec, out_dir)
        if audio is not None and audio.error:
            return Outcome(TRANSIENT, audio.error)
        if audio is not None and (stuck := audio_stalled(spec, audio)) is not None:
            return Outcome(TRANSIENT, stuck)
        return None

    assert proc.stdout is not None
    try:
        stopped = supervise(
            proc,
            Watch.of(spec, started, out_dir),
            stalled=lambda done_s: stalled(spec, done_s),
            encoded=lambda: encoded_seconds(out_dir / spec.rungs[0].name / "index.m3u8"),
            check=check,
        )
        if stopped is not None:
            return stopped
        code = proc.wait()
        if code == 0 and audio is not None:
            waited = wait_for_audio(audio, spec, cancel_path, out_dir, deadline, playable)
            if waited is not None:
                return waited
    finally:
        stop(proc)
        if audio is not None:
            audio.stop()
        proc.stdout.close()
    if cancel_path.exists() or not out_dir.exists():
        return Outcome(CANCELLED, cancelled_why(cancel_path))
    if code != 0:
        reason = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        detail = tail(log_path)
        return Outcome(TRANSIENT, f"FFmpeg failed ({reason}){': ' + detail if detail else '.'}")
    missing = [name for name in folders if not (out_dir / name / "index.m3u8").exists()]
    if missing or not (out_dir / "thumbnail.jpg").exists():
        return Outcome(TRANSIENT, f"FFmpeg finished without writing {', '.join(missing) or 'the thumbnail'}.")
    finish_playlists(out_dir, rungs, has_audio)
    if spec.settings.storyboard:
        storyboard_for(spec.info).finish(out_dir)
    language = spec.info.audio_language or "und"  # the source's own tag, else undetermined
    listed = write_manifests(out_dir, rungs, has_audio, spec.info.fps, spec.settings.segment_s, language)
    log_path.unlink(missing_ok=True)
    (out_dir / AUDIO_LOG).unlink(missing_ok=True)
    report(spec.key, "progress", 100)
    return Outcome(DONE, renditions=listed, seconds=time.monotonic() - started, encoding=encoding)


PROBE_FOLDER = "probe"  # the per-title probe's logs, inside the job's scratch folder while it runs


def per_title_skipped(spec: JobSpec, remux: bool) -> str | None:
    """Why the H.264 CRF is the fixed one for this job, or None when it is probed."""
    if not spec.target_vmaf:
        return "off"
    if remux:
        return "remux"  # the top rung is the source's own stream: nothing to aim
    if spec.info.still:
        return "still"
    if spec.info.duration < spec.per_title_min_s:
        return "short"  # the probe costs about the same whatever the length: too much for a short one
    return None


def h264_crf(
    spec: JobSpec, rungs: list[Rung], remux: bool, out_dir: Path, cancel_path: Path
) -> tuple[EncodeSettings, dict[str, Any]]:
    """The settings the ladder is encoded with (the top rung at the CRF chosen for the title, the rungs
    below at it or at their own ceiling, `CrfProbe.below_top`; or every rung at the fixed one) and what
    the video's `encoding` records of the choice. A probe that fails is logged and the
    fixed CRF is used: it never fails the job."""
    fixed = {"crf.h264": spec.settings.crf}
    skipped = per_title_skipped(spec, remux)
    if skipped is not None or spec.target_vmaf is None:
        return spec.settings, {**fixed, "probe.h264": {"skipped": skipped}}
    top = rungs[-1]

    def encoder(crf: int) -> list[str]:
        settings = dataclasses.replace(spec.settings, crf=crf)
        return [*x264_args(top, settings), *gop_args(spec.info.fps, settings)]

    try:
        choice = choose_crf(
            spec.ffmpeg,
            Path(spec.source),
            spec.info,
            top.width,
            top.height,
            encoder,
            PROBES["h264"],
            spec.target_vmaf,
            out_dir / PROBE_FOLDER,
            max_pixels=spec.max_pixels,
            timeout_s=2 * spec.stall_s,
            should_stop=lambda: cancel_path.exists() or not out_dir.exists(),
            preexec_fn=lambda: _child_setup(spec.nice),
        )
    except (ProbeFailed, OSError) as err:
        log.warning("job %s: per-title probe failed, fixed CRF %d kept: %s", spec.key, spec.settings.crf, err)
        return spec.settings, {**fixed, "probe.h264": {"failed": str(err)[:300]}}
    log.info(
        "job %s: per-title CRF %d for VMAF %g (%.1f s probe)",
        spec.key,
        choice.crf,
        choice.target_vmaf,
        choice.probe_s,
    )
    below = PROBES["h264"].below_top(choice.crf)
    doc = choice.to_doc() | ({"crf.h264_below_top": below} if below != choice.crf else {})
    return dataclasses.replace(spec.settings, crf=below, top_crf=choice.crf), doc
