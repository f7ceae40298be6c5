"""The CMAF ladder: which rungs a source gets, and the one FFmpeg command that makes them.

One FFmpeg process decodes the source once, splits the picture to every rung, and encodes them with
keyframes forced at the same instants (every segment length), so all rungs cut at the same times and a
player can switch between them at any segment boundary. The audio is encoded (or copied) once, as a
rendition of its own that every rung refers to. transcode/manifests.py writes the manifests over them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from transcode.ffmpeg import input_args
from transcode.probe import MediaInfo
from transcode.storyboard import Storyboard

# The enabled rows of config's `transcode.ladder`: (height, peak video kbit/s, H.264 level). CRF decides
# the quality; the cap keeps a rung within its bandwidth.
DEFAULT_LADDER = ((120, 250, "3.0"), (360, 900, "3.0"), (720, 3000, "3.1"), (1080, 6000, "4.0"))
# Never inflate: no rung's cap above this many times the source's own video bitrate.
MAX_INFLATION = 1.3
# The AAC encoder puts this many samples of priming before the first real one. MPEG-TS cannot say so (no
# edit list), so the first audio packet would start that much before the first video frame (the 1.445 s
# against 1.467 s of issue 12, and hls.js's bufferSeekOverHole). Dropping as many samples from the source
# makes the encoder's first packet start exactly with the picture, and keeps lip sync exact.
AAC_PRIMING_SAMPLES = 1024
THUMBNAIL_WIDTH = 640
THUMBNAIL_BATCH = 25  # the thumbnail is the most representative of this many frames from `thumbnail_at`


@dataclass(frozen=True)
class Rung:
    """One rendition: its displayed size, H.264 level and peak video bitrate."""

    height: int
    width: int
    level: str
    max_kbps: int = 0

    @property
    def name(self) -> str:
        return f"{self.height}p"


@dataclass(frozen=True)
class EncodeSettings:
    """The encoder knobs from config."""

    preset: str = "veryfast"
    crf: int = 23
    segment_s: int = 4
    audio_bitrate_k: int = 128
    ladder: tuple[tuple[int, int, str], ...] = DEFAULT_LADDER
    storyboard: bool = True
    loudness_lufs: float = -16.0  # every audio rendition's integrated loudness (EBU R128), ±1 LU
    top_crf: int | None = None  # the top rung's CRF, when the title's was chosen (transcode/pertitle.py)


def even(value: float) -> int:
    """The nearest even number ≥ 2 (H.264 with 4:2:0 needs even sizes)."""
    return max(2, math.floor(value / 2 + 0.5) * 2)


def h264_level(width: int, height: int, fps: float) -> str:
    """The lowest common H.264 level that holds this size and frame rate."""
    macroblocks_per_s = math.ceil(width / 16) * math.ceil(height / 16) * max(fps, 1)
    for level, limit in (
        ("3.0", 40500),
        ("3.1", 108000),
        ("3.2", 216000),
        ("4.0", 245760),
        ("4.2", 522240),
        ("5.1", 983040),
    ):
        if macroblocks_per_s <= limit:
            return level
    return "5.2"


def plan_rungs(info: MediaInfo, settings: EncodeSettings | None = None) -> list[Rung]:
    """Rungs of the ladder at or below the source's height (the smallest always), widths even, aspect
    kept; each capped at 1.3x the source's video bitrate when known, its level raised if it must be."""
    ladder = sorted((settings or EncodeSettings()).ladder)
    rows = [row for row in ladder if row[0] <= info.height] or ladder[:1]
    fps = min(info.fps or 30.0, 60.0)
    ceiling = int(info.video_kbps * MAX_INFLATION) if info.video_kbps > 0 else None
    rungs = []
    for height, max_kbps, level in rows:
        width = even(info.width * height / info.height)
        needed = h264_level(width, height, fps)
        rungs.append(
            Rung(
                height=height,
                width=width,
                level=max(level, needed, key=level_number),
                max_kbps=max(1, min(max_kbps, ceiling)) if ceiling is not None else max_kbps,
            )
        )
    return rungs


def level_number(level: str) -> float:
    return float(level)


def thumbnail_at(duration: float) -> float:
    """Where to look for the thumbnail: a tenth in, at most 30 s (past black intros, fades)."""
    return round(min(max(duration, 0.0) * 0.1, 30.0), 3)


def x264_args(rung: Rung, settings: EncodeSettings, index: int | None = None) -> list[str]:
    """The x264 options of one rung (for output stream `index` of a multi-output command)."""
    v = ":v" if index is None else f":v:{index}"
    maxrate = rung.max_kbps
    return (
        f"-c{v} libx264 -profile{v} high -level{v} {rung.level} -crf{v} {settings.crf} "
        f"-maxrate{v} {maxrate}k -bufsize{v} {maxrate * 2}k"
    ).split()


def gop_args(fps: float, settings: EncodeSettings, remux: bool = False) -> list[str]:
    """Preset and keyframes: one every segment, forced at the same instants in every rung; when the top
    rung is the source's own stream, at the source's keyframes (no further apart than two segments, so
    x264's own GOP limit, just above that, never adds one of its own)."""
    rate = min(fps or 30.0, 60.0)
    if remux:
        gop = math.ceil(rate * 2 * settings.segment_s) + 2
        return f"-preset {settings.preset} -g {gop} -sc_threshold 0 -force_key_frames source".split()
    gop = max(1, round(rate * settings.segment_s))
    return (
        f"-preset {settings.preset} -g {gop} -keyint_min {gop} -sc_threshold 0 "
        f"-force_key_frames expr:gte(t,n_forced*{settings.segment_s})"
    ).split()


REMUX_PROFILES = {"Constrained Baseline", "Baseline", "Main", "High"}


def can_remux(
    info: MediaInfo, rungs: list[Rung], settings: EncodeSettings, keyframe_gap: Callable[[], float | None]
) -> bool:
    """Whether the source's video can be the top rung as it is: H.264 8-bit 4:2:0 at the top rung's size,
    a profile and level it allows, within its bitrate cap, upright, keyframes at most two segments apart.
    `keyframe_gap` (a scan of every packet) is asked last, only when everything else qualifies."""
    top = rungs[-1]
    if not (
        info.video_codec == "h264"
        and info.pix_fmt == "yuv420p"
        and info.profile in REMUX_PROFILES
        and 0 < info.level <= round(float(top.level) * 10)
        and (info.width, info.height) == (top.width, top.height)
        and info.rotation == 0
        and 0 < info.video_kbps <= top.max_kbps
        and 0 < (info.fps or 0) <= 60
    ):
        return False
    gap = keyframe_gap()
    return gap is not None and gap <= 2 * settings.segment_s + 0.001


def aac_args(settings: EncodeSettings, gain_filter: str = "") -> list[str]:
    """Stereo AAC-LC, the encoder's priming dropped from the source, then the loudness gain if any."""
    chain = ",".join(filter(None, [f"atrim=start_sample={AAC_PRIMING_SAMPLES}", gain_filter]))
    return ["-af", chain, *f"-c:a aac -b:a {settings.audio_bitrate_k}k -ac 2".split()]


COPY_AUDIO_RATES = {44100, 48000}


def can_copy_audio(info: MediaInfo, settings: EncodeSettings, start_gap: Callable[[], float | None]) -> bool:
    """Whether the source's audio can go into every rung as it is: AAC-LC (what CODECS says), mono or
    stereo at 44.1 or 48 kHz, within 1.3x the audio bitrate setting, and starting with the picture (to
    the millisecond) once the priming packets before it are dropped (see copy_audio_args). `start_gap`
    (a look at the first packets) is asked last, only when everything else qualifies."""
    if not (
        info.has_audio
        and info.audio_codec == "aac"
        and info.audio_profile == "LC"
        and 1 <= info.audio_channels <= 2
        and info.audio_rate in COPY_AUDIO_RATES
        and 0 < info.audio_kbps <= settings.audio_bitrate_k * MAX_INFLATION
    ):
        return False
    gap = start_gap()
    return gap is not None and gap <= 0.001


def copy_audio_args() -> list[str]:
    """The source's AAC copied, without the packets before the picture's start: the encoder's priming,
    which an MP4 hides with an edit list and MPEG-TS cannot, so audio and video start together (the
    first real frame then decodes without its overlap: a 21 ms fade-in nobody hears)."""
    return ["-c:a", "copy", "-bsf:a", "noise=drop=lt(pts\\,0)"]


AUDIO = "audio"  # the folder of the audio rendition, beside the rungs


def hls_args(settings: EncodeSettings, folder: Path) -> list[str]:
    """One CMAF rendition as an output: `init.mp4` + `seg_NNNNN.m4s` and a growing EVENT playlist
    (FFmpeg writes it to a temporary file and renames it; a segment is renamed into place when whole,
    `temp_file`, so a playlist only ever lists whole segments). `finish_playlists` makes it VOD."""
    return [
        *f"-f hls -hls_time {settings.segment_s} -hls_playlist_type event".split(),
        *["-hls_flags", "independent_segments+temp_file", "-hls_segment_type", "fmp4"],
        *["-hls_fmp4_init_filename", "init.mp4", "-start_number", "1"],
        *["-hls_segment_filename", str(folder / "seg_%05d.m4s"), str(folder / "index.m3u8")],
    ]


# Each rendition is an output of its own, so FFmpeg would shift each one's timestamps by itself to make
# them non-negative: a video with B-frames (its first decode time before 0) would start 2 frames after
# the audio. Left alone, the MP4 muxer writes the delay as an edit list instead (tfdt 0, the edit trims
# the first 2 frames' worth), and every rendition presents its first frame or sample at 0.
KEEP_TIMESTAMPS = ["-avoid_negative_ts", "disabled"]


def ffmpeg_command(
    ffmpeg: str,
    source: Path,
    out_dir: Path,
    info: MediaInfo,
    rungs: list[Rung],
    settings: EncodeSettings,
    remux: bool = False,
    max_pixels: int | None = None,
) -> list[str]:
    """The single FFmpeg command that writes every video rendition (each rung), the thumbnail and the
    storyboard: one decode of the source, one output per rendition (`hls_args`). The audio rendition is
    an FFmpeg of its own, run beside it (transcode/audio.py).

    The source is opened as every source is (`input_args`): the file protocol alone, with the format the
    probe found, and decoders that refuse a picture above `max_pixels` (one a later frame may claim).

    With `remux` (see can_remux) the top rung is the source's video stream copied, and only the rungs
    below it are encoded, with keyframes where the source has them."""
    count = len(rungs)
    encoded = count - 1 if remux else count  # rungs[:encoded] are encoded, from the picture [c{encoded}]
    storyboard = storyboard_for(info) if settings.storyboard else None
    branches = ["sthumb", *(["sboard"] if storyboard else []), *([f"c{encoded}"] if encoded else [])]
    graph = [f"[0:v:0]format=yuv420p,split={len(branches)}{''.join(f'[{b}]' for b in branches)}"]
    if storyboard:
        graph.append(storyboard.filter_branch("sboard", "board"))
    # A cascade: the top rung is scaled from the source, each lower one from the rung above it, which
    # costs less than scaling every rung from the full-size picture.
    for i in range(encoded - 1, -1, -1):
        rung = rungs[i]
        scaled = f"[c{i + 1}]scale={rung.width}:{rung.height}:flags=bicubic,setsar=1"
        graph.append(f"{scaled},split=2[v{i}][c{i}]" if i > 0 else f"{scaled}[v{i}]")
    # The thumbnail's branch ends after the frames it chooses from: past them, the split feeds it
    # nothing more (without the trim it would go on scaling every frame to the end of the film).
    graph.append(
        f"[sthumb]select='gte(t\\,{thumbnail_at(info.duration)})',trim=end_frame={THUMBNAIL_BATCH},"
        f"scale={THUMBNAIL_WIDTH}:-2,thumbnail={THUMBNAIL_BATCH}[thumb]"
    )
    args = [
        ffmpeg,
        *["-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-progress", "pipe:1", "-nostats"],
        *input_args(str(source), info.container, max_pixels),
    ]
    args += ["-filter_complex", ";".join(graph)]
    top = dataclasses.replace(settings, crf=settings.top_crf) if settings.top_crf is not None else settings
    for i, rung in enumerate(rungs):
        if i < encoded:
            chosen = top if i == count - 1 else settings
            args += ["-map", f"[v{i}]", *x264_args(rung, chosen), *gop_args(info.fps, settings, remux)]
        else:
            args += ["-map", "0:v:0", "-c:v", "copy"]
        args += [*KEEP_TIMESTAMPS, *hls_args(settings, out_dir / rung.name)]
    args += ["-map", "[thumb]", "-frames:v", "1", "-update", "1", "-q:v", "3", str(out_dir / "thumbnail.jpg")]
    if storyboard:
        args += storyboard.output_args("board", out_dir)
    return args


def renditions(rungs: list[Rung], has_audio: bool) -> list[str]:
    """The folders of a ladder's renditions: every rung's, then the audio's."""
    return [*(rung.name for rung in rungs), *([AUDIO] if has_audio else [])]


def storyboard_for(info: MediaInfo) -> Storyboard:
    """The trick-play storyboard of a source (its sheets are an output of the ladder's command)."""
    return Storyboard.plan(info.duration, info.width, info.height)
