"""The storyboard: sprite sheets of small frames and a WebVTT file that maps time ranges to tiles.

The sheets are one more output of the ladder's FFmpeg (the decoded picture is already there): a branch of
its filter graph keeps one frame per interval (`fps`, which drops frames before any scaling), scales it to
a tile and packs the tiles into sheets (`tile`, which also flushes a last, partly filled sheet). The VTT is
written afterwards from the same geometry: cues `storyboard.jpg#xywh=x,y,w,h`, the format video.js, Shaka,
Plyr and Jellyfin read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

TILE_WIDTH = 160
MAX_TILES = 200
COLUMNS = 10
MAX_ROWS = 10
VTT = "storyboard.vtt"
SHEET_PATTERN = "storyboard_%d.jpg"
SINGLE_SHEET = "storyboard.jpg"


def even(value: float) -> int:
    return max(2, math.floor(value / 2 + 0.5) * 2)


@dataclass(frozen=True)
class Storyboard:
    """Where the tiles are: one every `interval` seconds, `count` of them, `columns` by `rows` a sheet."""

    duration: float
    interval: int
    count: int
    width: int
    height: int
    columns: int
    rows: int

    @classmethod
    def plan(cls, duration: float, width: int, height: int) -> Storyboard:
        """Whole-second intervals, at most MAX_TILES tiles, sheets no larger than they need to be."""
        duration = max(duration, 0.001)
        interval = max(1, math.ceil(duration / MAX_TILES))
        count = max(1, math.ceil(duration / interval))
        tile_height = even(TILE_WIDTH * height / max(width, 1))
        columns = min(COLUMNS, count)
        rows = min(MAX_ROWS, math.ceil(count / columns))
        return cls(duration, interval, count, TILE_WIDTH, tile_height, columns, rows)

    @property
    def per_sheet(self) -> int:
        return self.columns * self.rows

    @property
    def sheets(self) -> int:
        return math.ceil(self.count / self.per_sheet)

    def filter_branch(self, source: str, label: str) -> str:
        """The filter graph branch from `source` (a picture label) to the sheets at `label`."""
        return (
            f"[{source}]fps=1/{self.interval},scale={self.width}:{self.height}:flags=bilinear,setsar=1,"
            f"tile={self.columns}x{self.rows}[{label}]"
        )

    def output_args(self, label: str, out_dir: Path) -> list[str]:
        """The FFmpeg output writing the sheets as numbered JPEGs."""
        return ["-map", f"[{label}]", "-c:v", "mjpeg", "-q:v", "5", str(out_dir / SHEET_PATTERN)]

    def sheet_name(self, number: int) -> str:
        return SINGLE_SHEET if self.sheets == 1 else SHEET_PATTERN % number

    def finish(self, out_dir: Path) -> bool:
        """Name the sheets and write the VTT; False (and no VTT) if FFmpeg wrote no sheet."""
        written = sorted(
            int(p.stem.rsplit("_", 1)[1]) for p in out_dir.glob("storyboard_*.jpg") if p.stem[11:].isdigit()
        )
        if not written:
            return False
        if self.sheets == 1:
            (out_dir / SHEET_PATTERN.replace("%d", "1")).replace(out_dir / SINGLE_SHEET)
        last = len(written) * self.per_sheet - 1  # cues past the sheets FFmpeg wrote show its last tile
        temp = out_dir / f".{VTT}.tmp"
        temp.write_text(self.vtt(last_tile=last))
        temp.replace(out_dir / VTT)
        return True

    def vtt(self, last_tile: int | None = None) -> str:
        """The WebVTT: one cue per tile, end to end from 0 to the duration."""
        lines = ["WEBVTT", ""]
        for index in range(self.count):
            start = index * self.interval
            end = min((index + 1) * self.interval, self.duration)
            tile = index if last_tile is None else min(index, last_tile)
            sheet, place = divmod(tile, self.per_sheet)
            row, column = divmod(place, self.columns)
            lines += [
                f"{timestamp(start)} --> {timestamp(end)}",
                f"{self.sheet_name(sheet + 1)}#xywh={column * self.width},{row * self.height},"
                f"{self.width},{self.height}",
                "",
            ]
        return "\n".join(lines)


def timestamp(seconds: float) -> str:
    """WebVTT's hh:mm:ss.ttt."""
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"
