"""The audio rendition of a ladder: measured, then encoded once (or copied) by an FFmpeg of its own.

It runs beside the ladder's video FFmpeg, in parallel: the loudness is measured first (an audio-only
decode, seconds for an hour of audio) and the gain is known before the first audio segment is written,
while the video's first segments take longer than both. A second core does the audio's work instead of
the video process's threads interleaving it with the rungs'.

The audio keeps the source's timeline: it is opened the same way as by the video's FFmpeg (the same
input options, so the same start-time offset), and written with the same segment length and numbering.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from transcode.ffmpeg import input_args
from transcode.ladder import (
    KEEP_TIMESTAMPS,
    EncodeSettings,
    aac_args,
    copy_audio_args,
    hls_args,
)
from transcode.loudness import Loudness, measure, measure_args, normalise_filter
from transcode.manifests import encoded_seconds

LOG = "ffmpeg-audio.log"  # beside the rendition folders, like the ladder's ffmpeg.log


def audio_command(
    ffmpeg: str,
    source: str,
    folder: Path,
    settings: EncodeSettings,
    *,
    container: str = "",
    copy: bool = False,
    gain_filter: str = "",
    max_pixels: int | None = None,
    stream: str = "0:a:0",
) -> list[str]:
    """The FFmpeg that writes one audio rendition (`init.mp4`, `seg_NNNNN.m4s`, `index.m3u8`) into
    `folder`: the source's AAC copied, or encoded with the loudness filter."""
    codec = copy_audio_args() if copy else aac_args(settings, gain_filter)
    return [
        ffmpeg,
        *["-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-vn", "-sn", "-dn"],
        *input_args(source, container, max_pixels),
        *["-map", stream, *codec, *KEEP_TIMESTAMPS, *hls_args(settings, folder)],
    ]


@dataclass(frozen=True)
class AudioPlan:
    """What the audio rendition's FFmpeg was told, and why: the measured loudness, the gain filter."""

    loudness: Loudness | None
    copied: bool
    gain_filter: str


def plan_audio(
    loudness: Loudness | None, target: float, copyable: Callable[[], bool], sample_rate: int = 48000
) -> AudioPlan:
    """Copy the source's AAC only when it may be copied and already sits at the target; otherwise
    encode it with the gain that brings it there (none when it could not be measured)."""
    if loudness is not None and loudness.within(target) and copyable():
        return AudioPlan(loudness, True, "")
    gain = normalise_filter(loudness, target, sample_rate) if loudness is not None else ""
    return AudioPlan(loudness, False, gain)


class AudioRendition:
    """The audio rendition's two FFmpegs (measure, then encode or copy) run in a thread of the worker,
    beside the video's FFmpeg; `stop` ends whichever runs."""

    def __init__(
        self,
        ffmpeg: str,
        source: str,
        folder: Path,
        settings: EncodeSettings,
        *,
        target_lufs: float,
        copyable: Callable[[], bool],
        container: str = "",
        max_pixels: int | None = None,
        sample_rate: int = 48000,
        preexec: Callable[[], None] | None = None,
        extra_filter: str = "",
    ) -> None:
        self.extra_filter = extra_filter  # after the gain (an added track's padding to the video's length)
        self.ffmpeg, self.source, self.folder, self.settings = ffmpeg, source, folder, settings
        self.target, self.copyable, self.container = target_lufs, copyable, container
        self.max_pixels, self.sample_rate, self.preexec = max_pixels, sample_rate, preexec
        self.plan: AudioPlan | None = None
        self.error: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audio-rendition", daemon=True)
        self._advanced = time.monotonic()  # when its FFmpeg last moved on (see advanced_at)
        self._encoded = 0.0

    def start(self) -> None:
        self._thread.start()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def advanced_at(self) -> float:
        """When the audio last moved on (time.monotonic): a value of the measurement read, or a segment
        more in the rendition's playlist. The worker stops a job whose audio stalls as it stops one whose
        video does, instead of waiting for the whole job's timeout."""
        encoded = encoded_seconds(self.folder / "index.m3u8")
        if encoded > self._encoded:
            self._encoded, self._advanced = encoded, time.monotonic()
        return self._advanced

    def _moved(self) -> None:
        self._advanced = time.monotonic()

    def stop(self) -> None:
        """End the running FFmpeg (terminate, then kill) and wait for the thread."""
        self._stopped.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._thread.join(5.0)

    def _started(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        if self._stopped.is_set():
            proc.terminate()

    def _run(self) -> None:
        try:
            args = measure_args(self.ffmpeg, self.source, self.container, self.max_pixels)
            loudness, _ = measure(args, self._started, self.preexec, moved=self._moved)
            if self._stopped.is_set():
                return
            self.plan = plan_audio(loudness, self.target, self.copyable, self.sample_rate)
            command = audio_command(
                self.ffmpeg,
                self.source,
                self.folder,
                self.settings,
                container=self.container,
                copy=self.plan.copied,
                gain_filter=",".join(filter(None, [self.plan.gain_filter, self.extra_filter])),
                max_pixels=self.max_pixels,
            )
            with open(self.folder.parent / LOG, "wb") as log:
                proc = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    preexec_fn=self.preexec,
                )
            self._started(proc)
            self._moved()
            code = proc.wait()
            if code != 0 and not self._stopped.is_set():
                detail = (self.folder.parent / LOG).read_text(errors="replace").strip()
                reason = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
                self.error = f"FFmpeg failed on the audio ({reason}){': ' + detail[-300:] if detail else '.'}"
        except OSError as err:
            self.error = f"FFmpeg could not run for the audio: {err.strerror or err}."


# --- an added audio track (another language) for a finished ladder ----------------------------------


class NoAudio(Exception):
    """The file has no audio stream FFmpeg can read (or is in a format we do not open)."""


def audio_duration(
    ffmpeg: str, source: str, *, timeout_s: float = 30.0, preexec: Callable[[], None] | None = None
) -> float:
    """How long a file's first audio stream lasts, from FFmpeg copying its packets to nowhere (nothing
    decoded) and reporting `out_time_us` as structured progress; NoAudio when there is none it reads.
    The file is opened as every source is (`input_args`: the file protocol, the allowed formats)."""
    args = [
        ffmpeg,
        *["-hide_banner", "-nostdin", "-loglevel", "error", "-vn", "-sn", "-dn"],
        *input_args(source),
        *["-map", "0:a:0", "-c", "copy", "-f", "null", "-progress", "pipe:1", "-nostats", "-"],
    ]
    try:
        done = subprocess.run(
            args, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s, preexec_fn=preexec
        )
    except subprocess.TimeoutExpired as err:
        raise NoAudio(f"Reading the file's audio took longer than {timeout_s:g} s.") from err
    seconds = [
        int(line.split(b"=", 1)[1]) / 1e6
        for line in done.stdout.splitlines()
        if line.startswith(b"out_time_us=") and line.split(b"=", 1)[1].strip().lstrip(b"-").isdigit()
    ]
    if done.returncode != 0 or not seconds or seconds[-1] <= 0:
        raise NoAudio("The file has no audio stream that can be read.")
    return seconds[-1]


@dataclass(frozen=True)
class TrackSpec:
    """An added audio track's encode, picklable for the pool: the file, where its rendition goes, the
    ladder's settings and the video's duration (the track is cut or padded to it)."""

    ffmpeg: str
    source: str
    folder: str
    settings: EncodeSettings
    duration: float
    timeout_s: float = 600.0
    nice: int = 10


@dataclass(frozen=True)
class TrackOutcome:
    """The encoded track: its playlist's segments (names), or the sentence why there is none."""

    segments: tuple[str, ...] = ()
    error: str | None = None
    integrated: float | None = None  # the loudness measured before the correction


def nice(increment: int) -> None:
    """Lower an FFmpeg's CPU priority (in the child, before it runs)."""
    os.nice(increment)


def encode_track(spec: TrackSpec) -> TrackOutcome:
    """Measure and encode an added audio track into one rendition on the ladder's timeline: the same AAC
    settings, segment length and numbering as the ladder's own audio, brought to the loudness target,
    padded with silence or cut to the video's duration. Runs in a pool worker."""
    folder = Path(spec.folder)
    folder.mkdir(parents=True, exist_ok=True)
    track = AudioRendition(
        spec.ffmpeg,
        spec.source,
        folder,
        spec.settings,
        target_lufs=spec.settings.loudness_lufs,
        copyable=lambda: False,
        extra_filter=f"apad,atrim=end={spec.duration:.3f}",
        preexec=lambda: nice(spec.nice),
    )
    track.start()
    track.join(spec.timeout_s)
    if not track.done:
        track.stop()
        return TrackOutcome(error=f"Encoding the audio took longer than {spec.timeout_s:.0f} s.")
    if track.error:
        return TrackOutcome(error=track.error)
    playlist = folder / "index.m3u8"
    text = playlist.read_text()
    if "#EXT-X-ENDLIST" not in text:
        text = text.rstrip("\n") + "\n#EXT-X-ENDLIST\n"
    playlist.write_text(text.replace("#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-PLAYLIST-TYPE:VOD"))
    (folder.parent / LOG).unlink(missing_ok=True)
    names = tuple(line for line in text.splitlines() if line.startswith("seg_"))
    if not names:
        return TrackOutcome(error="The audio track came out empty.")
    loudness = track.plan.loudness if track.plan else None
    return TrackOutcome(segments=names, integrated=loudness.integrated if loudness else None)
