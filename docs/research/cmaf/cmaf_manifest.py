#!/usr/bin/env python3
"""Write master.m3u8 and manifest.mpd for a CMAF ladder from its own files (stdlib only).

Each rendition is a folder holding init.mp4 + seg_NNNNN.m4s + index.m3u8 (written by FFmpeg's hls muxer,
-hls_segment_type fmp4). Everything the manifests need is read from the boxes, never from FFmpeg's log:
  init.mp4: mdhd timescale, handler, sample entry (avc1/hvc1/av01/mp4a), width/height, avcC/av1C/esds
            -> the RFC 6381 CODECS string; elst -> presentationTimeOffset
  seg_*.m4s: moof/traf/tfdt baseMediaDecodeTime + trun sample durations -> exact SegmentTimeline
Usage: cmaf_manifest.py LADDER_DIR [--fps 30]
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path
from xml.sax.saxutils import quoteattr

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf", b"mvex", b"edts", b"dinf"}


def boxes(data: bytes, start: int = 0, end: int | None = None):
    """Yield (type, payload_start, payload_end) of the boxes in data[start:end], recursing into containers."""
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
            break
        yield kind, pos + header, pos + size
        if kind in CONTAINERS:
            yield from boxes(data, pos + header, pos + size)
        elif kind == b"stsd":
            yield from sample_entries(data, pos + header + 8, pos + size)
        pos += size


def sample_entries(data: bytes, start: int, end: int):
    for kind, s, e in boxes(data, start, end):
        yield kind, s, e
        if kind in (b"avc1", b"avc3", b"hvc1", b"hev1", b"av01"):  # VisualSampleEntry: 78 bytes before child boxes
            yield ("dims", s, e)
            yield from boxes(data, s + 78, e)
        elif kind == b"mp4a":  # AudioSampleEntry: 28 bytes
            yield ("audio", s, e)
            yield from boxes(data, s + 28, e)


def av1_codecs(av1c: bytes) -> str:
    """av01.P.LLT.DD from the av1C box (AV1-ISOBMFF §5): seq_profile, seq_level_idx_0, tier, bit depth."""
    b1, b2 = av1c[1], av1c[2]
    profile, level = b1 >> 5, b1 & 0x1F
    tier = "H" if b2 & 0x80 else "M"
    high_bitdepth, twelve_bit = bool(b2 & 0x40), bool(b2 & 0x20)
    depth = 12 if (twelve_bit and profile == 2) else 10 if high_bitdepth else 8
    return f"av01.{profile}.{level:02d}{tier}.{depth:02d}"


def esds_aot(esds: bytes) -> int:
    """The audio object type (2 = AAC-LC) from the DecoderSpecificInfo in esds."""
    pos = 4  # version+flags
    def read_desc(p):
        tag = esds[p]; p += 1; length = 0
        for _ in range(4):
            b = esds[p]; p += 1; length = (length << 7) | (b & 0x7F)
            if not b & 0x80:
                break
        return tag, p, length
    tag, p, _ = read_desc(pos)               # ES_Descriptor 0x03
    p += 3                                    # ES_ID, flags
    tag, p, _ = read_desc(p)                  # DecoderConfigDescriptor 0x04
    oti = esds[p]; p += 13
    tag, p, _ = read_desc(p)                  # DecoderSpecificInfo 0x05
    aot = esds[p] >> 3
    if aot == 31:
        aot = 32 + (((esds[p] & 7) << 3) | (esds[p + 1] >> 5))
    return aot if oti == 0x40 else oti


def read_init(path: Path) -> dict:
    data = path.read_bytes()
    info: dict = {"pto": 0}
    for kind, s, e in boxes(data):
        if kind == b"mdhd":
            v = data[s]
            info["timescale"] = struct.unpack(">I", data[s + (20 if v else 12) : s + (24 if v else 16)])[0]
        elif kind == b"hdlr":
            info["handler"] = data[s + 8 : s + 12].decode()
        elif kind == "dims":
            info["width"], info["height"] = struct.unpack(">HH", data[s + 24 : s + 28])
        elif kind == "audio":
            info["channels"] = struct.unpack(">H", data[s + 16 : s + 18])[0]
            info["rate"] = struct.unpack(">I", data[s + 24 : s + 28])[0] >> 16
        elif kind == b"avcC":
            info["codecs"] = "avc1." + data[s + 1 : s + 4].hex()
        elif kind == b"av1C":
            info["codecs"] = av1_codecs(data[s:e])
        elif kind == b"hvcC":
            info["codecs"] = "hvc1"  # full hvc1 string left out of this sketch
        elif kind == b"esds":
            info["codecs"] = f"mp4a.40.{esds_aot(data[s:e])}"
        elif kind == b"elst":
            v, count = data[s], struct.unpack(">I", data[s + 4 : s + 8])[0]
            if count:
                # entry: segment_duration, media_time (32 or 64 bit); media_time is in the track timescale
                off = s + 8 + (8 if v else 4)
                mt = struct.unpack(">q" if v else ">i", data[off : off + (8 if v else 4)])[0]
                info["pto"] = max(0, mt)
    return info


def read_segment(path: Path) -> tuple[int, int]:
    """(baseMediaDecodeTime, duration) of one .m4s in its track's timescale."""
    data = path.read_bytes()
    tfdt, total, default_dur = 0, 0, 0
    for kind, s, e in boxes(data):
        if kind == b"tfhd":
            flags = int.from_bytes(data[s + 1 : s + 4], "big")
            p = s + 8
            if flags & 0x01: p += 8
            if flags & 0x02: p += 4
            if flags & 0x08:
                default_dur = struct.unpack(">I", data[p : p + 4])[0]
        elif kind == b"tfdt":
            v = data[s]
            tfdt = struct.unpack(">Q" if v else ">I", data[s + 4 : s + (12 if v else 8)])[0]
        elif kind == b"trun":
            flags = int.from_bytes(data[s + 1 : s + 4], "big")
            count = struct.unpack(">I", data[s + 4 : s + 8])[0]
            p = s + 8 + (4 if flags & 0x01 else 0) + (4 if flags & 0x04 else 0)
            per = sum(4 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
            for _ in range(count):
                total += struct.unpack(">I", data[p : p + 4])[0] if flags & 0x100 else default_dur
                p += per
    return tfdt, total


def rendition(folder: Path) -> dict:
    info = read_init(folder / "init.mp4")
    segs = sorted(folder.glob("seg_*.m4s"))
    info["segments"] = [(int(p.stem.split("_")[1]), *read_segment(p), p.stat().st_size) for p in segs]
    info["name"] = folder.name
    total_bytes = sum(x[3] for x in info["segments"])
    seconds = sum(x[2] for x in info["segments"]) / info["timescale"]
    info["avg_bps"] = int(total_bytes * 8 / seconds) if seconds else 0
    info["peak_bps"] = max((int(x[3] * 8 * info["timescale"] / max(x[2], 1)) for x in info["segments"]), default=0)
    info["seconds"] = seconds
    return info


def timeline(r: dict) -> str:
    out, prev_end = [], None
    runs: list[list[int]] = []  # [t, d, repeat]
    for _, t, d, _ in r["segments"]:
        if runs and runs[-1][1] == d and prev_end == t:
            runs[-1][2] += 1
        else:
            runs.append([t, d, 0])
        prev_end = t + d
    for t, d, rep in runs:
        out.append(f'<S t="{t}" d="{d}"' + (f' r="{rep}"' if rep else "") + "/>")
    return "".join(out)


def write_mpd(ladder: Path, audio: dict | None, sets: list[list[dict]], fps: float) -> str:
    duration = max(r["seconds"] for s in sets for r in s)
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" '
        f'type="static" mediaPresentationDuration="PT{duration:.3f}S" minBufferTime="PT4S">',
        '  <Period id="0" start="PT0S">',
    ]
    def rep(r, extra=""):
        tpl = (f'<SegmentTemplate timescale="{r["timescale"]}" presentationTimeOffset="{r["pto"]}" '
               f'initialization={quoteattr(r["name"] + "/init.mp4")} media={quoteattr(r["name"] + "/seg_$Number%05d$.m4s")} '
               f'startNumber="{r["segments"][0][0]}"><SegmentTimeline>{timeline(r)}</SegmentTimeline></SegmentTemplate>')
        return (f'      <Representation id={quoteattr(r["name"])} codecs="{r["codecs"]}" bandwidth="{r["peak_bps"]}"{extra}>'
                f"{tpl}</Representation>")
    for i, s in enumerate(sets):
        lines.append(f'    <AdaptationSet id="{i}" contentType="video" mimeType="video/mp4" segmentAlignment="true" '
                     f'startWithSAP="1" frameRate="{fps:g}">')
        for r in s:
            lines.append(rep(r, f' width="{r["width"]}" height="{r["height"]}" sar="1:1"'))
        lines.append("    </AdaptationSet>")
    if audio:
        lines.append(f'    <AdaptationSet id="{len(sets)}" contentType="audio" mimeType="audio/mp4" lang="und" '
                     'segmentAlignment="true" startWithSAP="1">')
        lines.append(f'      <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="{audio["channels"]}"/>')
        lines.append(rep(audio, f' audioSamplingRate="{audio["rate"]}"'))
        lines.append("    </AdaptationSet>")
    lines += ["  </Period>", "</MPD>", ""]
    return "\n".join(lines)


def write_master(audio: dict | None, videos: list[dict], fps: float) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if audio:
        lines.append(f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="default",DEFAULT=YES,AUTOSELECT=YES,'
                     f'CHANNELS="{audio["channels"]}",URI="audio/index.m3u8"')
    for r in videos:
        a_peak, a_avg = (audio["peak_bps"], audio["avg_bps"]) if audio else (0, 0)
        codecs = r["codecs"] + ("," + audio["codecs"] if audio else "")
        lines.append(f'#EXT-X-STREAM-INF:BANDWIDTH={r["peak_bps"] + a_peak},AVERAGE-BANDWIDTH={r["avg_bps"] + a_avg},'
                     f'RESOLUTION={r["width"]}x{r["height"]},FRAME-RATE={fps:.3f},CODECS="{codecs}"'
                     + (',AUDIO="aud"' if audio else ""))
        lines.append(f'{r["name"]}/index.m3u8')
    return "\n".join(lines) + "\n"


def main() -> None:
    ladder = Path(sys.argv[1])
    fps = float(sys.argv[sys.argv.index("--fps") + 1]) if "--fps" in sys.argv else 30.0
    folders = [p for p in sorted(ladder.iterdir()) if (p / "init.mp4").exists()]
    renditions = [rendition(p) for p in folders]
    audio = next((r for r in renditions if r["handler"] == "soun"), None)
    videos = sorted((r for r in renditions if r["handler"] == "vide"), key=lambda r: (r["codecs"][:4] != "avc1", r["height"]))  # H.264 first: the variant a legacy player starts with
    sets: dict[str, list[dict]] = {}
    for r in videos:
        sets.setdefault(r["codecs"][:4], []).append(r)
    for path, text in ((ladder / "master.m3u8", write_master(audio, videos, fps)),
                       (ladder / "manifest.mpd", write_mpd(ladder, audio, list(sets.values()), fps))):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    for r in renditions:
        print(f'{r["name"]:>10} {r["codecs"]:<16} ts={r["timescale"]} pto={r["pto"]} segs={len(r["segments"])} '
              f'avg={r["avg_bps"]/1000:.0f}k peak={r["peak_bps"]/1000:.0f}k first_tfdt={r["segments"][0][1]}')


if __name__ == "__main__":
    main()
