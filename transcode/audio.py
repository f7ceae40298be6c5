"""The audio rendition of a ladder: measured, then encoded once (or copied) by an FFmpeg of its own.

It runs beside the ladder's video FFmpeg, in parallel: the loudness is measured first (an audio-only
decode, seconds for an hour of audio) and the gain is known before the first audio segment is written,
while the video's first segments take longer than both. A second core does the audio's work instead of
the video process's threads interleaving it with the rungs'.

The audio keeps the source's timeline: it is opened the same way as by the video's FFmpeg (the same
input options, so the same start-time offset), and written with the same segment length and numbering.
"""

from __future__ import annotations

import subprocess
import threading
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
    ) -> None:
        self.ffmpeg, self.source, self.folder, self.settings = ffmpeg, source, folder, settings
        self.target, self.copyable, self.container = target_lufs, copyable, container
        self.max_pixels, self.sample_rate, self.preexec = max_pixels, sample_rate, preexec
        self.plan: AudioPlan | None = None
        self.error: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audio-rendition", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

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
            loudness, _ = measure(args, self._started, self.preexec)
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
                gain_filter=self.plan.gain_filter,
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
            code = proc.wait()
            if code != 0 and not self._stopped.is_set():
                detail = (self.folder.parent / LOG).read_text(errors="replace").strip()
                reason = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
                self.error = f"FFmpeg failed on the audio ({reason}){': ' + detail[-300:] if detail else '.'}"
        except OSError as err:
            self.error = f"FFmpeg could not run for the audio: {err.strerror or err}."
