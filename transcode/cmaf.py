"""What a CMAF rendition holds, read from its own MP4 boxes.

FFmpeg writes each rendition (a video rung, the audio) as `init.mp4` + `seg_NNNNN.m4s` + a growing
`index.m3u8`. The two manifests that reference those same files (transcode/presentation.py: the HLS
master with exact CODECS, the DASH manifest with an exact SegmentTimeline) take every number from the
boxes, never from FFmpeg's log:

- init.mp4: `mdhd` timescale, `hdlr` handler, the sample entry's size or channels and rate, the
  RFC 6381 codec string from `avcC` / `av1C` / `esds`, and `elst` (the B-frame delay an edit list
  trims: DASH's presentationTimeOffset);
- seg_NNNNN.m4s: `tfdt` baseMediaDecodeTime and the `trun` sample durations (SegmentTimeline).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf", b"mvex", b"edts", b"dinf"}
VISUAL_ENTRIES = {b"avc1", b"avc3", b"hvc1", b"hev1", b"av01"}
VISUAL_ENTRY_HEADER = 78  # bytes of a VisualSampleEntry before its child boxes
AUDIO_ENTRY_HEADER = 28
CHANNEL_SCHEME = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011"
MOOF_READ = 256 * 1024  # a segment's moof is at its start; 120 frames' trun is ~2 KiB

Box = tuple[bytes, int, int]  # type, payload start, payload end


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """Every box in data[start:end], depth first, with the sample entries inside `stsd`."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header:
            return
        yield kind, pos + header, min(pos + size, end)
        if kind in CONTAINERS:
            yield from boxes(data, pos + header, min(pos + size, end))
        elif kind == b"stsd":
            yield from boxes(data, pos + header + 8, min(pos + size, end))
        elif kind in VISUAL_ENTRIES:
            yield from boxes(data, pos + header + VISUAL_ENTRY_HEADER, min(pos + size, end))
        elif kind == b"mp4a":
            yield from boxes(data, pos + header + AUDIO_ENTRY_HEADER, min(pos + size, end))
        pos += size


def av1_codecs(av1c: bytes) -> str:
    """av01.P.LLT.DD from an av1C payload (AV1-ISOBMFF §5): profile, level, tier, bit depth."""
    profile, level = av1c[1] >> 5, av1c[1] & 0x1F
    tier = "H" if av1c[2] & 0x80 else "M"
    high_bitdepth, twelve_bit = bool(av1c[2] & 0x40), bool(av1c[2] & 0x20)
    depth = 12 if (twelve_bit and profile == 2) else 10 if high_bitdepth else 8
    return f"av01.{profile}.{level:02d}{tier}.{depth:02d}"


def _descriptor(esds: bytes, pos: int) -> tuple[int, int]:
    """(tag, start of payload) of an MPEG-4 descriptor at pos."""
    tag, pos = esds[pos], pos + 1
    for _ in range(4):
        byte, pos = esds[pos], pos + 1
        if not byte & 0x80:
            break
    return tag, pos


def mp4a_codecs(esds: bytes) -> str:
    """mp4a.40.<audio object type> from an esds payload (2: AAC-LC)."""
    _, pos = _descriptor(esds, 4)  # ES_Descriptor, after version and flags
    flags = esds[pos + 2]
    pos += (
        3
        + (2 if flags & 0x80 else 0)
        + (1 + esds[pos + 3] if flags & 0x40 else 0)
        + (2 if flags & 0x20 else 0)
    )
    _, pos = _descriptor(esds, pos)  # DecoderConfigDescriptor
    object_type = esds[pos]
    if object_type != 0x40:
        return f"mp4a.{object_type:02x}"
    _, pos = _descriptor(esds, pos + 13)  # DecoderSpecificInfo: AudioSpecificConfig
    aot = esds[pos] >> 3
    if aot == 31:
        aot = 32 + (((esds[pos] & 7) << 3) | (esds[pos + 1] >> 5))
    return f"mp4a.40.{aot}"


@dataclass(frozen=True)
class Track:
    """What a rendition's init.mp4 says."""

    handler: str = ""  # "vide" or "soun"
    timescale: int = 0
    codecs: str = ""
    width: int = 0
    height: int = 0
    channels: int = 0
    sample_rate: int = 0
    presentation_offset: int = 0  # in timescale units: the start an edit list trims (B-frame delay)


def read_init(path: Path) -> Track:
    """The track of an init segment."""
    data = path.read_bytes()
    found: dict[str, int | str] = {}
    for kind, s, e in boxes(data):
        if kind == b"mdhd":
            at = s + (20 if data[s] else 12)
            found["timescale"] = struct.unpack(">I", data[at : at + 4])[0]
        elif kind == b"hdlr":
            found["handler"] = data[s + 8 : s + 12].decode("latin-1")
        elif kind in VISUAL_ENTRIES:
            found["width"], found["height"] = struct.unpack(">HH", data[s + 24 : s + 28])
        elif kind == b"mp4a":
            found["channels"] = struct.unpack(">H", data[s + 16 : s + 18])[0]
            found["sample_rate"] = struct.unpack(">I", data[s + 24 : s + 28])[0] >> 16
        elif kind == b"avcC":
            found["codecs"] = "avc1." + data[s + 1 : s + 4].hex()
        elif kind == b"av1C":
            found["codecs"] = av1_codecs(data[s:e])
        elif kind == b"esds":
            found["codecs"] = mp4a_codecs(data[s:e])
        elif kind == b"elst" and struct.unpack(">I", data[s + 4 : s + 8])[0]:
            wide = data[s] == 1
            at = s + 8 + (8 if wide else 4)
            media_time = struct.unpack(">q" if wide else ">i", data[at : at + (8 if wide else 4)])[0]
            found["presentation_offset"] = max(0, media_time)
    return Track(**found)  # type: ignore[arg-type]


def read_fragment(path: Path) -> tuple[int, int]:
    """(baseMediaDecodeTime, duration) of one .m4s segment, in its track's timescale."""
    with path.open("rb") as file:
        data = file.read(MOOF_READ)
    decode_time, duration, default_duration = 0, 0, 0
    for kind, s, _ in boxes(data):
        if kind == b"tfhd":
            flags = int.from_bytes(data[s + 1 : s + 4], "big")
            at = s + 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
            if flags & 0x08:
                default_duration = struct.unpack(">I", data[at : at + 4])[0]
        elif kind == b"tfdt":
            wide = data[s] == 1
            decode_time = struct.unpack(">Q" if wide else ">I", data[s + 4 : s + (12 if wide else 8)])[0]
        elif kind == b"trun":
            flags = int.from_bytes(data[s + 1 : s + 4], "big")
            count = struct.unpack(">I", data[s + 4 : s + 8])[0]
            at = s + 8 + (4 if flags & 0x01 else 0) + (4 if flags & 0x04 else 0)
            step = 4 * sum(1 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
            if not flags & 0x100:
                duration += count * default_duration
                continue
            for _ in range(count):
                duration += struct.unpack(">I", data[at : at + 4])[0]
                at += step
        elif kind == b"mdat":
            break
    return decode_time, duration


@dataclass(frozen=True)
class Rendition:
    """One folder of the ladder (`720p`, `audio`): its track and its segments' times and sizes."""

    name: str
    track: Track
    segments: tuple[tuple[int, int, int], ...] = ()  # (number, decode time, duration)
    peak_bps: int = 0
    average_bps: int = 0

    @property
    def seconds(self) -> float:
        return sum(d for _, _, d in self.segments) / self.track.timescale if self.track.timescale else 0.0


def read_rendition(folder: Path, names: list[str], peak_bps: int = 0, average_bps: int = 0) -> Rendition:
    """A rendition from its init segment and the segments `names` (as its playlist lists them)."""
    segments = []
    for name in names:
        number = int(name.rsplit("_", 1)[1].split(".")[0])
        segments.append((number, *read_fragment(folder / name)))
    return Rendition(folder.name, read_init(folder / "init.mp4"), tuple(segments), peak_bps, average_bps)


def timeline(segments: tuple[tuple[int, int, int], ...], offset: int = 0) -> str:
    """A SegmentTimeline's <S> elements: runs of equal, back-to-back durations folded with r. A
    segment's time is when its first frame is shown: its decode time plus the track's B-frame delay
    (`offset`, the edit list's, every segment starting with a key frame)."""
    runs: list[list[int]] = []  # [start, duration, repeats]
    end = None
    for _, decoded, duration in segments:
        start = decoded + offset
        if runs and runs[-1][1] == duration and end == start:
            runs[-1][2] += 1
        else:
            runs.append([start, duration, 0])
        end = start + duration
    return "".join(f'<S t="{t}" d="{d}"' + (f' r="{r}"' if r else "") + "/>" for t, d, r in runs)
