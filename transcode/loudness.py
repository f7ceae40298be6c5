"""EBU R128 loudness: measure a source's audio, and the filter that brings it to the target.

The measurement is FFmpeg's `ebur128` filter (true peak on) with its values written as metadata by
`ametadata` to FFmpeg's standard output as `key=value` lines — structured output, not the log text.
The last frame's values are the programme's (integrated loudness, loudness range, true peak). It costs
an audio-only decode (about 0.005 CPU-seconds per second of audio), far less than `loudnorm`'s analysis
pass, which resamples to 192 kHz (about 0.03).

The correction is a constant gain (`volume`) when the true peak stays under the ceiling after it — the
programme's dynamics untouched, as loudnorm's `linear=true` would do — and otherwise loudnorm with the
measured values, which limits the peaks (its dynamic mode) and lands on the target all the same.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from transcode.ffmpeg import input_args

TOLERANCE_LU = 1.0  # the target's window: ±1 LU
TRUE_PEAK_CEILING = -1.0  # dBTP every rendition stays under
# AAC's own overshoot (a few tenths of a dB on transients): the gain is planned against this lower
# ceiling so the encoded rendition still measures under TRUE_PEAK_CEILING.
PLANNED_PEAK = -1.5
# Below this the programme is silence (ebur128 answers -70 LUFS for digital silence): no gain is applied
# to it, which would only raise the noise floor.
SILENCE_LUFS = -60.0
LOUDNORM_LRA = 20  # loudnorm's allowed loudness range: wide, so that speech and music keep their dynamics


@dataclass(frozen=True)
class Loudness:
    """A programme's loudness: integrated (LUFS), loudness range (LU) and true peak (dBTP)."""

    integrated: float
    lra: float
    true_peak: float

    def gain_to(self, target: float) -> float:
        """The gain (dB) that brings it to the target; 0 for silence."""
        return 0.0 if self.integrated <= SILENCE_LUFS else target - self.integrated

    def within(self, target: float) -> bool:
        """Whether it is already at the target (±1 LU) and under the true-peak ceiling."""
        return abs(self.gain_to(target)) <= TOLERANCE_LU and self.true_peak <= TRUE_PEAK_CEILING


def measure_args(ffmpeg: str, source: str, container: str = "", max_pixels: int | None = None) -> list[str]:
    """FFmpeg reading the first audio stream only, writing ebur128's values as lines on stdout."""
    return [
        ffmpeg,
        *["-hide_banner", "-nostdin", "-loglevel", "error", "-vn", "-sn", "-dn"],
        *input_args(source, container, max_pixels),
        *["-map", "0:a:0", "-af", "ebur128=metadata=1:peak=true,ametadata=mode=print:file=pipe\\\\:1"],
        *["-f", "null", "-"],
    ]


def parse_measurement(lines: list[bytes] | list[str]) -> Loudness | None:
    """The last values of ebur128's metadata lines; None when there were none (no audio decoded)."""
    found: dict[str, float] = {}
    for raw in lines:
        line = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
        key, sep, value = line.strip().partition("=")
        if sep and key in ("lavfi.r128.I", "lavfi.r128.LRA", "lavfi.r128.true_peak"):
            try:
                found[key] = float(value)
            except ValueError:
                continue
    if "lavfi.r128.I" not in found:
        return None
    peak = found.get("lavfi.r128.true_peak", 0.0)
    return Loudness(
        integrated=found["lavfi.r128.I"],
        lra=found.get("lavfi.r128.LRA", 0.0),
        true_peak=20 * math.log10(peak) if peak > 0 else -math.inf,
    )


def measure(
    args: list[str],
    started: Callable[[subprocess.Popen[bytes]], None] = lambda proc: None,
    preexec: Callable[[], None] | None = None,
    moved: Callable[[], None] = lambda: None,
) -> tuple[Loudness | None, int]:
    """Run a measurement (`measure_args`): the loudness, and FFmpeg's exit code. Only the three values
    are kept while the lines stream by (a 4 h programme writes ten lines every 100 ms). `started` is
    given the process, so that a supervisor can stop it; `moved` hears of every value read (progress)."""
    keep: list[bytes] = []
    with subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, preexec_fn=preexec
    ) as proc:
        started(proc)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith((b"lavfi.r128.I=", b"lavfi.r128.LRA=", b"lavfi.r128.true_peak=")):
                keep = [*keep[-2:], line]
                moved()
        proc.wait()
    return parse_measurement(keep), proc.returncode


def normalise_filter(loudness: Loudness, target: float, sample_rate: int = 48000) -> str:
    """The filter that brings a measured programme to `target` LUFS, its true peak under the ceiling:
    a constant gain when the peak allows it, else loudnorm (measured values: one pass, no guessing)
    resampled back from its 192 kHz. Empty when no gain is needed (silence)."""
    gain = loudness.gain_to(target)
    if loudness.true_peak + gain <= PLANNED_PEAK:
        return f"volume={gain:.2f}dB" if abs(gain) >= 0.01 else ""
    measured = (
        f"measured_I={loudness.integrated:.2f}:measured_LRA={loudness.lra:.2f}:"
        f"measured_TP={loudness.true_peak:.2f}:measured_thresh={loudness.integrated - 10:.2f}"
    )
    return (
        f"loudnorm=I={target:g}:TP={PLANNED_PEAK:g}:LRA={LOUDNORM_LRA}:{measured}:linear=true,"
        f"aresample={sample_rate}"
    )
