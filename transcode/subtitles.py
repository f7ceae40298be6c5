"""Subtitles and chapters as text: an uploaded SRT or WebVTT file read, checked and cleaned, and the
WebVTT files a ladder serves made from it (the whole file, and one segment per video segment).

Reading: the bytes are decoded (UTF-8 with or without a BOM, else Windows-1252, which every byte
decodes: what old SRT files are written in), checked line by line so that a broken file is refused
with the number of its first bad line, then parsed by webvtt-py. Cue text keeps only what WebVTT's
cue text allows (<b>, <i>, <u>, <c.class>, <v name>, <lang tag>, <ruby>, <rt> and timestamps): any
other markup (an SRT <font>, a <script>) is dropped, and what remains is escaped, so a hostile file
cannot put markup in a player. Cues past the video's end are cut.

Segmenting (HLS): one WebVTT segment per segment of the ladder, at the same boundaries, each starting
`X-TIMESTAMP-MAP=MPEGTS:<m>,LOCAL:00:00:00.000`. A cue's time is the video's presentation time (0 is
the first picture); `m` is where that 0 lies on the MPEG-2 90 kHz clock the player maps fragments to:
the first video fragment's decode time (`tfdt`, which the edit list has already aligned with the first
presented picture: transcode/cmaf.py) scaled to 90 kHz. hls.js shows a cue at
LOCAL + (MPEGTS - initPTS) / 90000 with initPTS that same `tfdt`, so a cue shows at its own time.
"""

from __future__ import annotations

import bisect
import html
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import webvtt
from webvtt.errors import MalformedCaptionError, MalformedFileError

MPEG_CLOCK = 90_000
BOM = "\ufeff"
# A WebVTT timing: [hh:]mm:ss.ttt; SRT's: hh:mm:ss,ttt (many tools write a dot, or fewer digits).
VTT_TIME = r"(?:(\d{1,9}):)?([0-5]\d):([0-5]\d)\.(\d{3})"
SRT_TIME = r"(\d{1,9}):([0-5]\d):([0-5]\d)[,.](\d{1,3})"
VTT_TIMING = re.compile(rf"^\s*{VTT_TIME}[ \t]+-->[ \t]+{VTT_TIME}(?:[ \t]+.*)?$")
SRT_TIMING = re.compile(rf"^\s*{SRT_TIME}[ \t]*-->[ \t]*{SRT_TIME}(?:[ \t]+.*)?$")
VTT_HEADER = re.compile(r"^WEBVTT(?:[ \t].*)?$")
# Control characters no text file holds (tab, line breaks and form feed aside).
BINARY = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
TAG = re.compile(r"<([^<>]*)>")
# The cue-text tags WebVTT knows, with what each may carry: classes, a voice's name, a language tag.
ALLOWED_TAG = re.compile(
    r"^(?:/(?:c|i|b|u|v|lang|ruby|rt)"
    r"|(?:c|i|b|u|ruby|rt)(?:\.[A-Za-z0-9_-]{1,32}){0,4}"
    r"|v(?:\.[A-Za-z0-9_-]{1,32}){0,4}[ \t][^<>&]{1,64}"
    r"|lang(?:\.[A-Za-z0-9_-]{1,32}){0,4}[ \t][A-Za-z0-9-]{1,35}"
    r"|(?:\d{1,9}:)?[0-5]\d:[0-5]\d\.\d{3})$"
)
MAX_CUE_CHARS = 1000
MAX_CUES = 10_000  # a three-hour film has some 3,000; webvtt-py reads ~5,000 a second
MAX_SEGMENTED_BYTES = 32 * 1024 * 1024
WHOLE = "subtitles.vtt"  # a track's whole file, beside its segments: the MPD's and the JSON's URL


class SubtitleError(ValueError):
    """A file that is no subtitle file we can read; the message names the line when there is one."""


@dataclass(frozen=True)
class Cue:
    """One cue: seconds on the video's presentation timeline, and its (clean) WebVTT cue text."""

    start: float
    end: float
    text: str


def decode(data: bytes) -> str:
    """The text of an uploaded file: UTF-8 (a BOM dropped), else Windows-1252; no binary data."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    text = text.removeprefix(BOM).replace("\r\n", "\n").replace("\r", "\n")
    for number, line in enumerate(text.split("\n"), start=1):
        if BINARY.search(line):
            raise SubtitleError(f"Line {number}: the file holds binary data, not text.")
    return text


def seconds(hours: str | None, minutes: str, secs: str, millis: str) -> float:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(secs) + int(millis.ljust(3, "0")) / 1000


def check_lines(text: str, kind: str) -> None:
    """Refuse a file whose lines are not SRT or WebVTT, naming the first bad line."""
    lines = text.split("\n")
    timing = VTT_TIMING if kind == "vtt" else SRT_TIMING
    if kind == "vtt" and not VTT_HEADER.match(lines[0]):
        raise SubtitleError("Line 1: a WebVTT file starts with WEBVTT.")
    found = 0
    block_start = True  # the line follows a blank one (or starts the file)
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            block_start = True
            continue
        if "-->" in line:
            match = timing.match(line)
            if match is None:
                raise SubtitleError(f"Line {number}: this is not a cue timing ({stripped[:60]!r}).")
            parts = match.groups()
            start, end = seconds(*parts[:4]), seconds(*parts[4:8])
            if end <= start:
                raise SubtitleError(f"Line {number}: the cue ends before it starts.")
            found += 1
            if found > MAX_CUES:
                raise SubtitleError(
                    f"Line {number}: more than {MAX_CUES} cues; at most {MAX_CUES} are taken."
                )
        elif kind == "srt" and block_start and not stripped.isdigit() and not found:
            raise SubtitleError(f"Line {number}: expected a cue number or a cue timing.")
        elif kind == "srt" and stripped.isdigit() and block_start:
            following = lines[number] if number < len(lines) else ""
            if "-->" not in following:
                raise SubtitleError(f"Line {number + 1}: expected the timing of cue {stripped}.")
        block_start = False
    if not found:
        raise SubtitleError("The file holds no cue (no line with a cue timing).")


def clean_text(lines: Sequence[str]) -> str:
    """A cue's text with only WebVTT's own tags kept, everything else escaped; no blank lines (a
    blank line would end the cue) and no '-->' (it would start one)."""
    kept = []
    for line in lines:
        if not line.strip():
            continue
        pieces, at = [], 0
        for match in TAG.finditer(line):
            pieces.append(html.escape(html.unescape(line[at : match.start()]), quote=False))
            inner = match.group(1).strip()
            if ALLOWED_TAG.match(inner):
                pieces.append(f"<{inner}>")
            at = match.end()
        pieces.append(html.escape(html.unescape(line[at:]), quote=False))
        cleaned = "".join(pieces).replace("-->", "--&gt;").strip()
        if cleaned:
            kept.append(cleaned)
    return "\n".join(kept)[:MAX_CUE_CHARS]


def parse(data: bytes, duration: float | None) -> list[Cue]:
    """The cues of an SRT or WebVTT file, cleaned, sorted, and cut at `duration` (cues starting at or
    after it dropped, those running past it ended there). SubtitleError names what is wrong."""
    text = decode(data)
    kind = "vtt" if text.lstrip("\n").startswith("WEBVTT") else "srt"
    check_lines(text.lstrip("\n") if kind == "vtt" else text, kind)
    try:
        if kind == "vtt":
            captions = webvtt.from_string(text.lstrip("\n")).captions
        else:
            captions = webvtt.WebVTT.from_buffer(iter(text.split("\n")), format="srt").captions
    except (MalformedFileError, MalformedCaptionError) as err:
        raise SubtitleError(f"The file is not valid {kind.upper()}: {err}") from err
    cues = []
    for caption in captions:
        start = timestamp_seconds(caption.start)
        end = timestamp_seconds(caption.end)
        if duration is not None:
            if start >= duration:
                continue
            end = min(end, duration)
        body = clean_text(caption.lines)
        if body and end > start:
            cues.append(Cue(start, end, body))
    if not cues:
        raise SubtitleError("The file holds no cue within the video's duration.")
    return sorted(cues, key=lambda cue: (cue.start, cue.end))


def timestamp_seconds(value: str) -> float:
    """Seconds of webvtt-py's 'hh:mm:ss.ttt'."""
    hours, minutes, rest = value.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(rest)


def timestamp(value: float) -> str:
    """A WebVTT timestamp, hh:mm:ss.ttt."""
    millis = round(value * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def cue_block(cue: Cue) -> str:
    return f"{timestamp(cue.start)} --> {timestamp(cue.end)}\n{cue.text}\n"


def vtt_text(cues: Sequence[Cue], header: str = "") -> str:
    """A WebVTT file of these cues (after `header` lines such as X-TIMESTAMP-MAP)."""
    head = "WEBVTT\n" + (header + "\n" if header else "")
    return head + "".join("\n" + cue_block(cue) for cue in cues)


def mpegts(decode_time: int, timescale: int) -> int:
    """A decode time of the ladder's first video fragment on the 90 kHz MPEG-2 clock (33 bits)."""
    return round(decode_time * MPEG_CLOCK / timescale) % (1 << 33) if timescale else 0


def segment(cues: Sequence[Cue], durations: Sequence[float], mpegts_zero: int) -> tuple[list[str], str]:
    """The WebVTT segments of a subtitle track, one per video segment (`durations`, in the ladder's
    order, the first starting at 0), and the playlist over them (`seg_NNNNN.vtt`, numbered from 1). A
    cue across a boundary is in every segment it overlaps (players drop the repeats); SubtitleError
    when the repeats would make the track larger than MAX_SEGMENTED_BYTES."""
    header = f"X-TIMESTAMP-MAP=MPEGTS:{mpegts_zero},LOCAL:00:00:00.000"
    starts = list(itertools.accumulate(durations, initial=0.0))[:-1]
    placed: list[list[str]] = [[] for _ in durations]
    total = 0
    for cue in cues:
        block = cue_block(cue)
        first = max(bisect.bisect_right(starts, cue.start) - 1, 0)
        last = max(bisect.bisect_left(starts, cue.end) - 1, first)  # the segment holding its end
        total += len(block) * (last - first + 1)
        if total > MAX_SEGMENTED_BYTES:
            raise SubtitleError(
                "The cues overlap so much that the track would repeat more than "
                f"{MAX_SEGMENTED_BYTES // (1024 * 1024)} MiB of text across the video's segments."
            )
        for index in range(first, min(last, len(placed) - 1) + 1):
            placed[index].append(block)
    head = "WEBVTT\n" + header + "\n"
    segments = [head + "".join("\n" + block for block in blocks) for blocks in placed]
    target = max((int(d + 0.999) for d in durations), default=1)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{max(target, 1)}",
        "#EXT-X-MEDIA-SEQUENCE:1",
        "#EXT-X-PLAYLIST-TYPE:VOD",
    ]
    for number, length in enumerate(durations, start=1):
        lines += [f"#EXTINF:{length:.6f},", segment_name(number)]
    lines.append("#EXT-X-ENDLIST")
    return segments, "\n".join(lines) + "\n"


def segment_name(number: int) -> str:
    return f"seg_{number:05d}.vtt"


@dataclass(frozen=True)
class Chapter:
    start: float
    title: str


def chapters_vtt(chapters: Sequence[Chapter], duration: float) -> str:
    """A WebVTT chapters file: each chapter runs to the next one's start, the last to the end."""
    cues = []
    for index, chapter in enumerate(chapters):
        end = chapters[index + 1].start if index + 1 < len(chapters) else duration
        title = html.escape(chapter.title, quote=False).replace("-->", "--&gt;")
        cues.append(Cue(chapter.start, max(end, chapter.start + 0.001), " ".join(title.split())))
    return vtt_text(cues)
