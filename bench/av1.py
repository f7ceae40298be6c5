"""The AV1 follow-up job against the H.264 ladder it follows, through the real pipeline, in one run.

For each source (1080p30, made here: nothing is downloaded) a video is queued as an upload's would be,
on the embedded database with one transcoding process, `transcode.av1: after` and config.yaml's
settings otherwise (x264 veryfast CRF 23; SVT-AV1 preset and CRF from config.yaml). Two times:
  H.264 ladder   the transcode job queued → the video ready (probe, encode, manifests, publish);
  AV1 job        the video ready (its AV1 job is queued then) → the AV1 rungs listed in master and MPD
                 (source fetch, probe, SVT-AV1 pass, publish into the ladder, manifests rewritten);
and per rung the bytes of the AV1 segments against the H.264 segments of the same height (an AV1 rung
larger than its H.264 rung is neither stored nor listed: shown as such). Targets
(issue 19): the AV1 job <= 1.5x the H.264 ladder's time; AV1 rungs <= 0.65x the bytes (the quality at
those bytes is bench/quality.py's: docs/quality.md, VMAF within 1 point in the median).

    .venv/bin/python bench/av1.py [--seconds 20] [--sources synthetic,cartoon,camera]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bson import ObjectId

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quality import make_source

from core.config import load_settings
from models import ensure_indexes
from models.db import open_memory_database
from services.container import build_services
from services.transcoding import TRANSCODE, transcode_key
from transcode.ffmpeg import ffmpeg_binary

from common import lavfi_clip, table

SOURCES = ("synthetic", "cartoon", "camera")


def rung_bytes(folder: Path) -> int:
    """The bytes a player fetches for a rung: its segments (the init segment is a few hundred bytes)."""
    return sum(p.stat().st_size for p in folder.glob("seg_*.m4s"))


class Pipeline:
    """The transcoding part of a server on the embedded database (H.264 ladder, then its AV1 job)."""

    async def start(self, media: Path) -> None:
        self.settings = load_settings(
            None,
            environ={},
            overrides={
                "server": {"secret_key": "bench", "debug": False},
                "media": {"root": str(media)},
                "transcode": {"workers": 1, "av1": "after"},
                "jobs": {"poll_interval_s": 0.1},
            },
        )
        self.db = open_memory_database("bench-av1")
        await ensure_indexes(self.db)
        self.services = build_services(self.settings, self.db, node="bench")
        await self.services.start()

    async def run(self, source: Path) -> tuple[float, float, dict]:
        """Seconds of the H.264 ladder and of the AV1 job; the video's document at the end."""
        video_id = ObjectId()
        await self.db.videos.insert_one(
            {"_id": video_id, "title": "bench", "status": "pending", "source": str(source),
             "created_at": self.services.clock()}
        )  # fmt: skip
        started = time.perf_counter()
        await self.services.queue.enqueue(TRANSCODE, {"video_id": video_id}, key=transcode_key(video_id))
        while (doc := await self.db.videos.find_one({"_id": video_id}))["status"] not in ("ready", "failed"):
            await asyncio.sleep(0.02)
        if doc["status"] == "failed":
            raise RuntimeError(doc["error"])
        ready = time.perf_counter()
        while "av01" not in ((doc := await self.db.videos.find_one({"_id": video_id})).get("codecs") or []):
            job = await self.db.jobs.find_one({"key": f"av1:{video_id}"})
            if job is not None and job["state"] in ("failed", "queued") and job.get("last_error"):
                raise RuntimeError(f"the AV1 job failed: {job['last_error']}")
            await asyncio.sleep(0.02)
        return ready - started, time.perf_counter() - ready, doc

    async def stop(self) -> None:
        await self.services.stop()


async def main_async(args: argparse.Namespace) -> None:
    kinds = [k for k in args.sources.split(",") if k]
    rows, time_ratios, byte_ratios, made = [], [], [], 0
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        pipeline = Pipeline()
        await pipeline.start(root / "media")
        warm = lavfi_clip(root / "warm.mp4", "320x240", 2, audio=False)
        await pipeline.run(warm)  # start the pool's worker, as a running server has
        settings = pipeline.settings.transcode
        for kind in kinds:
            source = make_source(kind, root / f"{kind}.mp4", args.seconds)
            h264_s, av1_s, doc = await pipeline.run(source)
            ladder = Path(pipeline.settings.media.root) / Path(doc["hls_path"]).parent
            time_ratios.append(av1_s / h264_s)
            for rendition in doc["renditions"]:
                height = rendition["height"]
                h264, av1 = rung_bytes(ladder / f"{height}p"), rung_bytes(ladder / f"av1-{height}p")
                made += 1
                if not av1:  # larger than the H.264 rung: not stored, not listed (services/av1.py)
                    rows.append(
                        (
                            kind,
                            f"{height}p",
                            round(h264 * 8 / args.seconds / 1000),
                            "-",
                            "not listed (> 1x)",
                            f"{h264_s:.1f}",
                            f"{av1_s:.1f}",
                            f"{av1_s / h264_s:.2f}x",
                        )
                    )
                    continue
                byte_ratios.append(av1 / h264)
                kbps = [round(size * 8 / args.seconds / 1000) for size in (h264, av1)]
                rows.append(
                    (kind, f"{height}p", *kbps, f"{av1 / h264:.2f}x", f"{h264_s:.1f}", f"{av1_s:.1f}",
                     f"{av1_s / h264_s:.2f}x")
                )  # fmt: skip
        await pipeline.stop()
    print(
        f"AV1 follow-up job against the H.264 ladder: {args.seconds} s 1080p30 sources, one transcoding "
        f"process, x264 {settings.preset} CRF {settings.crf}, SVT-AV1 preset {settings.av1_preset} "
        f"CRF {settings.av1_crf}, rung caps as config.yaml\n"
    )
    print(
        table(
            ["source", "rung", "H.264 kbit/s", "AV1 kbit/s", "AV1/H.264 bytes", "H.264 ladder s", "AV1 job s",
             "AV1 job / ladder"],
            rows,
        )
    )  # fmt: skip
    print(
        f"\nmedian AV1 job / H.264 ladder time {statistics.median(time_ratios):.2f}x (target <= 1.5x); "
        f"median AV1 / H.264 bytes per listed rung {statistics.median(byte_ratios):.2f}x (target <= 0.65x; "
        f"{len(byte_ratios)} of {made} rungs listed)"
    )
    print(f"(load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; FFmpeg {ffmpeg_binary()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--sources", default=",".join(SOURCES), help=f"any of {', '.join(SOURCES)}")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
