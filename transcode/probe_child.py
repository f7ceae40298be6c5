"""The probe's own process: it opens one source with PyAV (FFmpeg's libraries) and prints JSON.

transcode/probe.py runs this file as a script (`python -I probe_child.py ...`) in a process of its own,
under the address-space limit and the timeout of `media.probe_*`, and validates what it prints; nothing
here reads FFmpeg's log text. It imports only the standard library and PyAV (whose import is most of its
time), so that it owes nothing to the rest of the application. The source is opened as
transcode.ffmpeg.input_args opens it for FFmpeg: the file protocol alone, the demuxers of the allowlist
(the parent passes them), the demuxer the probe found once it is known, and no decoded picture above
`--max-pixels`. PyAV's wheel brings its own FFmpeg libraries (8.1), which name demuxers and codecs as
the pinned FFmpeg binary (9.0) that transcodes does.

    probe_child.py info FILE --formats mov,matroska,... --max-pixels N [--format DEMUXER]
    probe_child.py packets FILE --formats ... --format DEMUXER --stream v:0 [--stream a:0] [--count N]
                   [--keys]

`info` prints the container and its streams, the rotation of the first video stream (read from its
first decoded frame: PyAV exposes a stream's display matrix on frames only) and, when the stream states
no average frame rate, the times of its first packets. `packets` prints the times of each named
stream's packets (the first N of each with --count, only keyframes with --keys), read in one pass
without decoding. A refusal is {"refused": WHY}: WHY is "format" (a demuxer off the list), "memory" (an
allocation failed) or "unreadable".
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
from typing import Any

RATE_PACKETS = 120  # the video packets whose times give the frame rate of a source that states none
FIRST_FRAME_PACKETS = 64  # the packets given to the decoder to find the first frame (B-frames delay it)


class NotAllowed(Exception):
    """FFmpeg refused to open the file with the demuxer it detected: that one is off the list."""


def open_source(av: Any, path: str, formats: str, demuxer: str, max_pixels: int) -> Any:
    """The source opened as input_args opens it: `file:` protocol only, an allowed demuxer only."""
    # One decoder thread: find_stream_info decodes a few frames, and each thread of a decoder's pool
    # reserves its stack and its frames in the address space the limit counts (64 cores, 64 threads).
    options = {"threads": "1", **({"max_pixels": str(max_pixels)} if max_pixels else {})}
    try:
        return av.open(
            f"file:{path}",
            format=demuxer or None,
            options=options,  # to the container and, for find_stream_info, to every stream's decoder
            container_options={"protocol_whitelist": "file", "format_whitelist": formats},
        )
    except av.error.ArgumentError:  # EINVAL: what avformat_open_input answers "Format not on whitelist"
        raise NotAllowed from None


def seconds(value: int | None, time_base: Any) -> float | None:
    return float(value * time_base) if value is not None and time_base is not None else None


def rate(value: Any) -> float:
    return float(value) if value else 0.0


def stream_record(stream: Any) -> dict[str, Any]:
    """What the parent needs of one stream, in plain JSON types."""
    context = stream.codec_context
    record: dict[str, Any] = {
        "index": stream.index,
        "type": stream.type,
        "codec": context.codec.canonical_name if context is not None else "",
        "profile": (context.profile or "") if context is not None else "",
        "level": max(0, context.level) if context is not None else 0,
        "bit_rate": (context.bit_rate or 0) if context is not None else 0,
        "duration": seconds(stream.duration, stream.time_base),
        "attached_pic": bool(stream.disposition & stream.disposition.attached_pic),
    }
    if stream.type == "video" and context is not None:
        record |= {
            "width": context.width,
            "height": context.height,
            "pix_fmt": context.pix_fmt or "",
            "average_rate": rate(stream.average_rate),
            "base_rate": rate(stream.base_rate),
        }
    if stream.type == "audio" and context is not None:
        record |= {"channels": context.channels, "sample_rate": context.sample_rate}
    return record


def picture_size(codec: str, data: bytes) -> tuple[int, int] | None:
    """A picture's size from its own header, for a PNG or JPEG frame whose container states none and
    that the decoder refuses (over max_pixels): the parent then names the size in its refusal."""
    if codec in ("png", "apng") and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if codec == "mjpeg" and data[:2] == b"\xff\xd8":
        at = 2
        while at + 9 < len(data) and data[at] == 0xFF:
            marker, length = data[at + 1], struct.unpack(">H", data[at + 2 : at + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[at + 5 : at + 9])
                return width, height
            at += 2 + length
    return None


def first_packets(av: Any, container: Any, record: dict[str, Any], max_pixels: int) -> dict[str, Any]:
    """Read the video stream's first packets: its first frame's rotation, the picture size a PNG or JPEG
    frame states when the container does not, and the packet times when no average rate is stated."""
    stream = container.streams[record["index"]]
    stream.codec_context.options = {"max_pixels": str(max_pixels)} if max_pixels else {}
    stream.codec_context.thread_count = 1  # one frame: no thread pool and its buffers
    found: dict[str, Any] = {"rotation": 0, "packet_times": []}
    want_times = not record["average_rate"]
    decoding, given = True, 0
    for packet in container.demux(stream):
        if packet.size == 0:
            continue
        if want_times and packet.pts is not None and len(found["packet_times"]) < RATE_PACKETS:
            found["packet_times"].append(seconds(packet.pts, packet.time_base))
        if not record["width"] and "size" not in found:
            size = picture_size(record["codec"], bytes(packet))
            if size:
                found["size"] = size
        if decoding:
            given += 1
            try:
                frames = stream.decode(packet)
            except av.error.MemoryError:
                raise
            except av.error.FFmpegError:
                frames = []
            if frames:
                turn = float(frames[0].rotation or 0)
                found["rotation"] = round(turn) if math.isfinite(turn) else 0
                decoding = False
            elif given >= FIRST_FRAME_PACKETS:
                decoding = False
        if not decoding and (not want_times or len(found["packet_times"]) >= RATE_PACKETS):
            break
    return found


def info(av: Any, args: argparse.Namespace) -> dict[str, Any]:
    with open_source(av, args.file, args.formats, args.format, args.max_pixels) as container:
        streams = [stream_record(stream) for stream in container.streams]
        report: dict[str, Any] = {
            "format": container.format.name,
            "duration": container.duration / 1_000_000 if container.duration is not None else None,
            "bit_rate": container.bit_rate or 0,
            "streams": streams,
            "rotation": 0,
            "packet_times": [],
        }
        video = next(
            (s for s in streams if s["type"] == "video" and "width" in s and not s["attached_pic"]), None
        )
        if video is not None:
            found = first_packets(av, container, video, args.max_pixels)
            if "size" in found:
                video["width"], video["height"] = found.pop("size")
            report |= found
        return report


def packets(av: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The times of the packets of each stream asked for (`v:0`, `a:0`), in one pass over the file."""
    kinds = {"v": "video", "a": "audio"}
    with open_source(av, args.file, args.formats, args.format, args.max_pixels) as container:
        wanted: dict[int, list[float]] = {}
        order: list[list[float]] = []
        for name in args.stream:
            kind, _, number = name.partition(":")
            chosen = [s for s in container.streams if s.type == kinds[kind]]
            times: list[float] = []
            order.append(times)
            if len(chosen) > int(number or 0):
                wanted[chosen[int(number or 0)].index] = times
        streams = [container.streams[index] for index in wanted]
        for packet in container.demux(streams) if streams else ():
            times = wanted.get(packet.stream.index, [])
            if (
                packet.size == 0
                or (args.keys and not packet.is_keyframe)
                or (args.count and len(times) >= args.count)
            ):
                continue
            at = packet.pts if packet.pts is not None else packet.dts
            if at is not None:
                times.append(float(at * packet.time_base))
            if args.count and all(len(t) >= args.count for t in wanted.values()):
                break
        return {"times": order}


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    modes = main.add_subparsers(dest="mode", required=True)
    for mode in ("info", "packets"):
        sub = modes.add_parser(mode)
        sub.add_argument("file")
        sub.add_argument("--formats", required=True, help="the demuxers allowed, comma-separated")
        sub.add_argument("--format", default="", help="the demuxer to use (the one the probe found)")
        sub.add_argument("--max-pixels", type=int, default=0, help="the largest picture a decoder may make")
        if mode == "packets":
            sub.add_argument("--stream", action="append", required=True, help="v:0, a:0; one or more")
            sub.add_argument("--count", type=int, default=0)
            sub.add_argument("--keys", action="store_true", help="keyframes only")
    return main


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        import av
        import av.error

        av.logging.set_level(None)  # nothing on stderr: the answer is the JSON on stdout
        report = (info if args.mode == "info" else packets)(av, args)
    except MemoryError:  # Python's, or FFmpeg's ENOMEM (av.error.MemoryError is one)
        report = {"refused": "memory"}
    except ImportError as error:  # the loader could not map PyAV's libraries within the limit
        report = {"refused": "memory" if "map" in str(error) or "memory" in str(error) else "unreadable"}
    except NotAllowed:
        report = {"refused": "format"}
    except Exception as error:  # whatever else FFmpeg or PyAV raise, the file is refused
        report = {"refused": "unreadable", "detail": type(error).__name__}
    sys.stdout.write(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
