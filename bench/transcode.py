"""Transcoding speed: the pipeline against one FFmpeg per rung and against its own command run by hand.

Generates a 1080p, 30 fps, 20 s clip with audio, then times, in one run and interleaved:
  (a) the pipeline end to end: a job queued → the video `ready` (probe, pool, FFmpeg, master playlist
      and DASH manifest): the CMAF ladder, audio encoded (or copied) once as its own rendition;
  (b) the naive ladder of the original Django/RQ design: one FFmpeg per rung, one after the other, each
      rung with its own audio (fMP4 segments too, so that only the design differs);
  (c) the commands the pipeline runs, launched directly: the ladder's FFmpeg and, beside it, the audio
      rendition's (loudness measured, then encoded or copied);
  (d) the ladder as it was before the audio had its own FFmpeg: the audio an output of the ladder's
      command, without loudness.
Same codec settings for all of them. Then the latency of GET /api/health/ (wrk) while two transcodes run,
and while 16 clients log in (bcrypt) on top.

With --first-playable: the time from a job queued to the video playable while it is transcoded (master
and every rung's first segment written, the first segment decodes), for 60 s and 300 s 1080p30 sources,
both a full encode (an 8 Mbit/s source) and a remux (a compliant 4 Mbit/s source, keyframes every 2 s);
the job is stopped once playable.

With --remux: a compliant 1080p source (H.264 4 Mbit/s, keyframes every 2 s) through the pipeline, which
copies its top rung, against one FFmpeg per rung and against the full single-pass encode of the same
source (the pipeline before remuxing existed).

With --storyboard: the single command with and without the storyboard output; its share of the time.

With --loudness: the audio rendition alone, for sources too quiet, too loud, MP3 and already at the
target: the loudness measured before and after (EBU R128), which path it took, and what measuring and
correcting cost against a plain encode of the same audio.

With --breakdown: where the CPU of (b) and (c) goes, each part measured on its own: one decode, the
filter graph (the cascade of scalers, the thumbnail and storyboard branches), each rung's x264 (fed raw
frames through a pipe by another FFmpeg, less what reading them costs), the audio; and the least (c) can
cost with these codec settings (one decode, the rungs scaled, the four encoders, nothing else) against (b).

With --threads: the single command with x264 frame threads set per rung (120p,360p,720p,1080p; "auto" is
x264's own choice, 1.5 per core for each encoder), to pick the setting the pipeline ships.

    .venv/bin/python bench/transcode.py [--repeat 3] [--seconds 20] [--audio aac|mp3]
    .venv/bin/python bench/transcode.py --first-playable [--lengths 60,300]
    .venv/bin/python bench/transcode.py --loudness [--repeat 3] [--seconds 60]
    .venv/bin/python bench/transcode.py --remux | --storyboard | --threads | --breakdown [--repeat 3]
        [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import tornado.netutil
from bson import ObjectId

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import load_settings
from handlers.app import make_app
from models import ensure_indexes
from models.db import open_memory_database
from server import make_server
from services.container import build_services
from services.transcoding import TRANSCODE, transcode_key
from transcode.audio import AudioRendition, audio_command, plan_audio
from transcode.ffmpeg import ffmpeg_binary, input_args
from transcode.ladder import (
    AUDIO,
    EncodeSettings,
    aac_args,
    can_copy_audio,
    can_remux,
    ffmpeg_command,
    gop_args,
    hls_args,
    plan_rungs,
    renditions,
    x264_args,
)
from transcode.loudness import measure, measure_args
from transcode.probe import audio_start_gap, max_keyframe_gap, probe

from common import lavfi_clip, table

ENCODE = EncodeSettings()  # the shipped settings: veryfast, CRF 23, 4 s segments, AAC 128k


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def children_cpu() -> float:
    """CPU seconds (user + system) of the child processes waited for so far."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def cpu_of(run: Callable[[], object]) -> float:
    """The CPU seconds of the processes `run` starts and waits for."""
    before = children_cpu()
    run()
    return children_cpu() - before


def single_pass(
    source: Path,
    out: Path,
    info,
    settings: EncodeSettings = ENCODE,
    threads: tuple | None = None,
    as_pipeline: bool = False,
    audio_inside: bool = False,
) -> float:
    """(c): the commands by hand: the ladder's FFmpeg and the audio rendition's beside it (measured,
    then encoded, or with `as_pipeline` copied when it qualifies), as the worker runs them; with
    `audio_inside` (d), the audio an output of the ladder's command, as before it had its own. With
    `as_pipeline` the video is remuxed when it qualifies; x264 threads per rung if given."""
    shutil.rmtree(out, ignore_errors=True)
    rungs = plan_rungs(info)
    for name in renditions(rungs, info.has_audio):
        (out / name).mkdir(parents=True)
    remux = False
    if as_pipeline:
        remux = can_remux(info, rungs, settings, lambda: max_keyframe_gap(source, info.duration))
    args = ffmpeg_command(ffmpeg_binary(), source, out, info, rungs, settings, remux)
    if threads:  # each rung is an output of its own: its x264 options end where its HLS muxer's begin
        outputs = [i for i, arg in enumerate(args) if arg == "-f" and args[i + 1] == "hls"]
        for at, n in reversed(list(zip(outputs, threads, strict=False))):
            args = args[:at] + (["-threads:v", str(n)] if n else []) + args[at:]
    if not info.has_audio:
        return timed(args)
    if audio_inside:
        return timed([*args, "-map", "0:a:0", *aac_args(settings), *hls_args(settings, out / AUDIO)])
    started = time.perf_counter()
    audio = AudioRendition(
        ffmpeg_binary(), str(source), out / AUDIO, settings, target_lufs=settings.loudness_lufs,
        copyable=lambda: as_pipeline and can_copy_audio(info, settings, lambda: audio_start_gap(source)),
    )  # fmt: skip
    audio.start()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    audio.join()
    assert audio.error is None, audio.error
    return time.perf_counter() - started


def per_rung(source: Path, out: Path, info) -> float:
    """(b): one FFmpeg per rung (and one for the thumbnail), each decoding the source again."""
    shutil.rmtree(out, ignore_errors=True)
    total = 0.0
    for rung in plan_rungs(info):
        folder = out / rung.name
        folder.mkdir(parents=True)
        total += timed(
            [
                ffmpeg_binary(),
                "-loglevel",
                "error",
                "-y",
                "-i",
                str(source),
                "-vf",
                f"format=yuv420p,scale={rung.width}:{rung.height}",
                *x264_args(rung, ENCODE),
                *gop_args(info.fps, ENCODE),
                *aac_args(ENCODE),
                *f"-f hls -hls_time {ENCODE.segment_s} -hls_playlist_type vod -hls_segment_type fmp4".split(),
                "-hls_segment_filename",
                str(folder / "seg_%05d.m4s"),
                str(folder / "index.m3u8"),
            ]
        )
    total += timed(
        [
            ffmpeg_binary(),
            "-loglevel",
            "error",
            "-y",
            "-ss",
            "2",
            "-i",
            str(source),
            "-vf",
            "scale=640:-2,thumbnail=25",
            "-frames:v",
            "1",
            str(out / "thumbnail.jpg"),
        ]
    )
    return total


class Pipeline:
    """A server's transcoding part on the embedded database, with its HTTP app for the health probe."""

    async def start(self, media: Path, workers: int) -> None:
        self.settings = load_settings(
            None,
            environ={},
            overrides={
                "server": {"secret_key": "bench", "debug": False},
                "media": {"root": str(media)},
                # the H.264 ladder alone: bench/av1.py measures the AV1 follow-up job
                "transcode": {"workers": workers, "av1": "off"},
                "jobs": {"poll_interval_s": 0.1},
            },
        )
        self.db = open_memory_database("bench")
        await ensure_indexes(self.db)
        self.services = build_services(self.settings, self.db, node="bench")
        self.app = make_app(self.services)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.server = make_server(self.app, self.settings.server)
        self.server.add_sockets(sockets)
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        await self.services.start()

    async def run(self, source: Path) -> float:
        """(a): queue a job for a video of this source; seconds until it is ready."""
        video_id = ObjectId()
        await self.db.videos.insert_one(
            {
                "_id": video_id,
                "title": "bench",
                "status": "pending",
                "source": str(source),
                "created_at": self.services.clock(),
            }
        )
        started = time.perf_counter()
        await self.services.queue.enqueue(TRANSCODE, {"video_id": video_id}, key=transcode_key(video_id))
        # Watching costs CPU the transcode would use: a look at the status alone, 20 times a second
        # (looking every 20 ms at the whole document took 0.4 s of CPU per run, 2-3 % of (a)).
        ended = ("ready", "failed")
        while (await self.db.videos.find_one({"_id": video_id}, {"status": 1}))["status"] not in ended:
            await asyncio.sleep(0.05)
        return time.perf_counter() - started

    async def first_playable(self, source: Path) -> tuple[float, float]:
        """Queue a job; seconds until the video is playable (its first segment decodes), and the
        seconds that took FFmpeg from its start (the rest is queue, probe and keyframe scan)."""
        video_id = ObjectId()
        await self.db.videos.insert_one(
            {"_id": video_id, "title": "bench", "status": "pending", "source": str(source),
             "created_at": self.services.clock()}
        )  # fmt: skip
        started = time.perf_counter()
        await self.services.queue.enqueue(TRANSCODE, {"video_id": video_id}, key=transcode_key(video_id))
        ffmpeg_started = None
        while True:
            doc = await self.db.videos.find_one({"_id": video_id})
            if ffmpeg_started is None and (doc.get("transcode_progress") or 0) >= 1:
                ffmpeg_started = time.perf_counter()
            if doc.get("playable") and doc.get("live_path"):
                break
            if doc["status"] in ("ready", "failed"):
                raise RuntimeError(f"the video went {doc['status']} before it was playable")
            await asyncio.sleep(0.02)
        master = Path(self.settings.media.root) / doc["live_path"]
        rung = master.parent / f"{doc['renditions'][0]['height']}p"
        first = sorted(rung.glob("seg_*.m4s"))[0]  # a CMAF segment decodes after its init segment
        fragment = master.parent.parent / "first-fragment.mp4"
        fragment.write_bytes((rung / "init.mp4").read_bytes() + first.read_bytes())
        subprocess.run([ffmpeg_binary(), "-v", "error", "-i", str(fragment), "-f", "null", "-"], check=True)
        fragment.unlink()
        elapsed = time.perf_counter() - started
        job = await self.db.jobs.find_one({"key": transcode_key(video_id)})
        await self.services.queue.cancel(str(job["_id"]))
        while (await self.db.videos.find_one({"_id": video_id}))["status"] == "processing":
            await asyncio.sleep(0.05)
        return elapsed, elapsed - ((ffmpeg_started or started) - started)

    async def stop(self) -> None:
        self.server.stop()
        await self.services.stop()


def bench_source(path: Path, seconds: int, compliant: bool) -> Path:
    """A 1080p30 source with a tone: 8 Mbit/s (re-encoded), or 4 Mbit/s with keyframes every 2 s
    (remuxed)."""
    video = ["-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M", "-g", "60", "-keyint_min", "60"]
    video += ["-sc_threshold", "0"] if compliant else []
    subprocess.run(
        [
            ffmpeg_binary(), "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac", "-shortest",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-level", "4.0",
            *(video if compliant else ["-b:v", "8M"]), str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


async def first_playable(args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        pipeline = Pipeline()
        await pipeline.start(root / "media", workers=1)
        await pipeline.run(lavfi_clip(root / "warm.mp4", "320x240", 1, audio=False))  # a warm pool
        for seconds in (int(s) for s in args.lengths.split(",")):
            for compliant in (False, True):
                source = bench_source(root / f"source-{seconds}-{compliant}.mp4", seconds, compliant)
                runs = [await pipeline.first_playable(source) for _ in range(args.repeat)]
                total = statistics.median(r[0] for r in runs)
                ffmpeg = statistics.median(r[1] for r in runs)
                rows.append(
                    (f"{seconds} s 1080p30", "remux" if compliant else "full encode", total, ffmpeg,
                     " ".join(f"{r[0]:.1f}" for r in runs))
                )  # fmt: skip
                source.unlink()
        await pipeline.stop()
    print(
        f"Time to first playable (job queued -> playable, first segment decodes), median of {args.repeat}\n"
    )
    print(table(["source", "path", "median s", "of which FFmpeg s", "all runs s"], rows))
    print("\ntarget: <= 10 s for a 1080p source on 2 cores, independent of its length")


def medians_table(times: dict[str, list[float]], seconds: int) -> tuple[dict[str, float], str]:
    med = {name: statistics.median(runs) for name, runs in times.items()}
    rows = [
        (name, med[name], seconds / med[name], " ".join(f"{t:.1f}" for t in runs))
        for name, runs in times.items()
    ]
    return med, table(["run", "median s", "x real time", "all runs s"], rows)


async def remux_side_by_side(args: argparse.Namespace) -> None:
    """A compliant source: the pipeline (top rung copied) against per-rung and the full single pass."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        source = bench_source(root / "compliant.mp4", args.seconds, compliant=True)
        info = await probe(source)
        pipeline = Pipeline()
        await pipeline.start(root / "media", workers=1)
        await pipeline.run(lavfi_clip(root / "warm.mp4", "320x240", 1, audio=False))
        names = ("(a) pipeline, top rung remuxed", "(b) one FFmpeg per rung", "(c) full single-pass encode")
        times: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(args.repeat):
            times[names[2]].append(single_pass(source, root / "c", info))
            times[names[1]].append(per_rung(source, root / "b", info))
            times[names[0]].append(await pipeline.run(source))
        remuxed = await pipeline.db.videos.find_one({}, sort=[("_id", -1)])
        await pipeline.stop()
    med, text = medians_table(times, args.seconds)
    print(f"A compliant 1080p30 {args.seconds} s source (H.264 4 Mbit/s, keyframes every 2 s), median of "
          f"{args.repeat}\n")  # fmt: skip
    print(text)
    a, b, c = (med[name] for name in names)
    print(f"\n(a)/(b) = {a / b:.3f} (target <= 0.45)   (a)/(c) = {a / c:.3f} (target <= 0.60)")
    print(f"the pipeline's video: {remuxed['status']}, rungs {[r['height'] for r in remuxed['renditions']]}")


async def storyboard_share(args: argparse.Namespace) -> None:
    """The single command with and without the storyboard output."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        source = lavfi_clip(root / "source.mp4", "1920x1080", args.seconds, bitrate="8M")
        info = await probe(source)
        without = EncodeSettings(storyboard=False)
        names = ("with the storyboard (shipped)", "without it")
        times: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(args.repeat):
            times[names[0]].append(single_pass(source, root / "c", info))
            times[names[1]].append(single_pass(source, root / "c", info, without))
    med, text = medians_table(times, args.seconds)
    print(f"The single command on a 1080p30 {args.seconds} s clip, median of {args.repeat}\n")
    print(text)
    share = (med[names[0]] - med[names[1]]) / med[names[0]]
    print(f"\nthe storyboard's share of the transcode: {share * 100:.1f} % (median against median)")


LOUDNESS_SOURCES = (  # name, codec, gain (dB) on a tone over pink noise
    ("too quiet (AAC)", "aac", -30),
    ("too loud, clipping (AAC)", "aac", 16),
    ("quiet (MP3)", "libmp3lame", -24),
    ("at the target (AAC)", "aac", 6.7),
)


def loudness_source(path: Path, codec: str, gain_db: float, seconds: int) -> Path:
    """A 320x180 clip whose audio is a tone over pink noise at `gain_db`."""
    subprocess.run(
        [
            ffmpeg_binary(), "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=30:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-f", "lavfi", "-i", f"anoisesrc=color=pink:sample_rate=48000:amplitude=0.3:duration={seconds}",
            "-filter_complex", f"[1:a][2:a]amix=inputs=2:normalize=0,volume={gain_db}dB[a]",
            "-map", "0:v", "-map", "[a]", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-c:a", codec, "-b:a", "128k", "-ac", "2", str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


def joined_rendition(folder: Path) -> Path:
    """An audio rendition as one fragmented MP4, to measure."""
    joined = folder.parent / f"{folder.name}.mp4"
    parts = [folder / "init.mp4", *sorted(folder.glob("seg_*.m4s"))]
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    return joined


async def loudness_report(args: argparse.Namespace) -> None:
    """Before and after, and the cost, of the audio rendition's loudness for several sources."""
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for name, codec, gain in LOUDNESS_SOURCES:
            source = loudness_source(root / f"{codec}{gain}.mp4", codec, gain, args.seconds)
            info = await probe(source)
            before, _ = measure(measure_args(ffmpeg_binary(), str(source)))
            normalised, plain, measuring = [], [], []
            for _ in range(args.repeat):
                out = root / "out"
                shutil.rmtree(out, ignore_errors=True)
                (out / AUDIO).mkdir(parents=True)
                measuring.append(timed(measure_args(ffmpeg_binary(), str(source))))
                started = time.perf_counter()
                audio = AudioRendition(
                    ffmpeg_binary(), str(source), out / AUDIO, ENCODE, target_lufs=ENCODE.loudness_lufs,
                    copyable=lambda i=info, s=source: can_copy_audio(i, ENCODE, lambda: audio_start_gap(s)),
                )  # fmt: skip
                audio.start()
                audio.join()
                normalised.append(time.perf_counter() - started)
                after, _ = measure(measure_args(ffmpeg_binary(), str(joined_rendition(out / AUDIO))))
                shutil.rmtree(root / "plain", ignore_errors=True)
                (root / "plain").mkdir()
                plain.append(timed(audio_command(ffmpeg_binary(), str(source), root / "plain", ENCODE)))
            plan = audio.plan
            path = "copied" if plan.copied else (plan.gain_filter.split("=")[0] or "encoded")
            med_n, med_p = statistics.median(normalised), statistics.median(plain)
            rows.append(
                (name, f"{before.integrated:.1f} / {before.true_peak:.1f}",
                 f"{after.integrated:.1f} / {after.true_peak:.1f}", path,
                 statistics.median(measuring), med_n, med_p, med_n - med_p)
            )  # fmt: skip
    print(f"The audio rendition of a {args.seconds} s source, target {ENCODE.loudness_lufs:g} LUFS, "
          f"median of {args.repeat}\n")  # fmt: skip
    print(
        table(
            ["source", "before LUFS / dBTP", "after LUFS / dBTP", "path", "measure s",
             "measure + encode s", "plain encode s", "added s"],
            rows,
        )
    )  # fmt: skip
    print("\ntarget: after within -16 +-1 LU, true peak <= -1 dBTP; the measurement runs beside the video")


THREADS = {
    "auto": None,
    "1,1,2,2": (1, 1, 2, 2),
    "1,2,3,4": (1, 2, 3, 4),
    "1,2,4,6": (1, 2, 4, 6),
    "2,2,2,2": (2, 2, 2, 2),
    "4,4,4,4": (4, 4, 4, 4),
}


async def thread_settings(args: argparse.Namespace) -> None:
    """x264 frame threads per rung in the single command, interleaved so drift hits them all alike."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        source = lavfi_clip(root / "source.mp4", "1920x1080", args.seconds, bitrate="8M")
        info = await probe(source)
        times: dict[str, list[float]] = {name: [] for name in THREADS}
        for _ in range(args.repeat):
            for name, threads in THREADS.items():
                times[name].append(single_pass(source, root / "c", info, threads=threads))
    med, text = medians_table(times, args.seconds)
    print(f"x264 frame threads per rung (120p,360p,720p,1080p), 1080p30 {args.seconds} s clip, "
          f"median of {args.repeat}\n")  # fmt: skip
    print(text)
    best = min(med, key=med.get)
    print(f"\nfastest: {best}, {med[best] / med['auto']:.3f}x the time of x264's own choice (auto)")


def nulled(args: list[str], rungs: int) -> list[str]:
    """The ladder's command with every rung's output sent to the null muxer: the decode and the whole
    filter graph still run, no x264 does. The thumbnail and storyboard stay."""
    starts = [i for i, arg in enumerate(args) if arg == "-map"]
    outputs = [args[a:b] for a, b in zip(starts, [*starts[1:], len(args)], strict=True)]
    body = []
    for i, output in enumerate(outputs):
        body += output if i >= rungs else [*output[:2], "-f", "null", "-"]
    return args[: starts[0]] + body


def piped_cpu(producer: list[str], consumer: list[str]) -> tuple[float, float]:
    """Run `producer | consumer`; the CPU seconds of each process, its own (wait4's rusage)."""
    feeder = subprocess.Popen(producer, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    encoder = subprocess.Popen(consumer, stdin=feeder.stdout, stdout=subprocess.DEVNULL)
    assert feeder.stdout is not None
    feeder.stdout.close()
    used = []
    for proc in (feeder, encoder):
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        assert proc.returncode == 0, proc.args
        used.append(usage.ru_utime + usage.ru_stime)
    return used[0], used[1]


def x264_alone(source: Path, info, rung, folder: Path) -> float:
    """The CPU seconds of one rung's x264 (and its muxer), fed the scaled picture as raw frames through
    a pipe by another FFmpeg, less what reading those frames costs (the same reader with no encoder)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    ffmpeg = ffmpeg_binary()
    size = f"{rung.width}x{rung.height}"
    scale = f"format=yuv420p,scale={rung.width}:{rung.height}:flags=bicubic,setsar=1"
    producer = [ffmpeg, "-v", "error", "-i", str(source), "-an", "-vf", scale, "-f", "rawvideo", "pipe:1"]
    consumer = [ffmpeg, "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", size]
    consumer += ["-r", f"{info.fps:g}", "-i", "pipe:0"]
    reader = [*consumer, "-f", "null", "-"]
    consumer += [*x264_args(rung, ENCODE), *gop_args(info.fps, ENCODE), *hls_args(ENCODE, folder)]
    return piped_cpu(producer, consumer)[1] - piped_cpu(producer, reader)[1]


async def breakdown(args: argparse.Namespace) -> None:
    """CPU seconds of each part of (b) and (c), each measured on its own, medians of `repeat` runs,
    interleaved."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        audio = "libmp3lame" if args.audio == "mp3" else "aac"
        source = lavfi_clip(root / "source.mp4", "1920x1080", args.seconds, bitrate="8M", audio_codec=audio)
        info = await probe(source)
        rungs = plan_rungs(info)
        out = root / "c"

        def ladder(command: list[str]) -> None:
            shutil.rmtree(out, ignore_errors=True)
            for name in renditions(rungs, info.has_audio):
                (out / name).mkdir(parents=True)
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)

        full = ffmpeg_command(ffmpeg_binary(), source, out, info, rungs, ENCODE)
        bare = ffmpeg_command(ffmpeg_binary(), source, out, info, rungs, EncodeSettings(storyboard=False))
        decode = [ffmpeg_binary(), "-v", "error", *input_args(str(source), info.container), "-an"]
        rung_audio = [ffmpeg_binary(), "-v", "error", "-y", "-i", str(source), "-vn", *aac_args(ENCODE)]
        rung_audio += hls_args(ENCODE, out / AUDIO)
        measured: dict[str, Callable[[], float]] = {
            "one decode of the picture": lambda: cpu_of(lambda: timed([*decode, "-f", "null", "-"])),
            "decode + the scalers (no storyboard, no x264)": lambda: cpu_of(
                lambda: ladder(nulled(bare, len(rungs)))
            ),
            "decode + the whole filter graph (no x264)": lambda: cpu_of(
                lambda: ladder(nulled(full, len(rungs)))
            ),
            **{
                f"x264 {rung.name} alone (raw frames in)": (
                    lambda r=rung: x264_alone(source, info, r, root / "x264" / r.name)
                )
                for rung in rungs
            },
            "(c) the ladder's command": lambda: cpu_of(lambda: ladder(full)),
            "(c) its audio rendition (measured, encoded)": lambda: cpu_of(
                lambda: single_audio(source, root / "audio")
            ),
            "(b) one FFmpeg per rung": lambda: cpu_of(lambda: per_rung(source, root / "b", info)),
            "(b) the audio of one of its rungs": lambda: cpu_of(lambda: ladder(rung_audio)),
        }
        cpu: dict[str, list[float]] = {name: [] for name in measured}
        for _ in range(args.repeat):
            for name, measure_it in measured.items():
                cpu[name].append(measure_it())
    med = {name: statistics.median(runs) for name, runs in cpu.items()}
    b = med["(b) one FFmpeg per rung"]
    rows = [
        (name, med[name], f"{med[name] / b:.3f}", " ".join(f"{t:.1f}" for t in cpu[name])) for name in med
    ]
    print(
        f"CPU seconds, 1080p30 {args.seconds} s clip with {args.audio.upper()} audio, "
        f"x264 {ENCODE.preset}, median of {args.repeat}\n"
    )
    print(table(["part", "CPU s", "of (b)'s CPU", "all runs"], rows))
    decode_s, scaled = med["one decode of the picture"], med["decode + the scalers (no storyboard, no x264)"]
    encoders = sum(med[f"x264 {rung.name} alone (raw frames in)"] for rung in rungs)
    ladder_s, audio_s = med["(c) the ladder's command"], med["(c) its audio rendition (measured, encoded)"]
    least = scaled + encoders
    print(f"\n(c)'s CPU / (b)'s CPU = {(ladder_s + audio_s) / b:.3f}")
    print(
        f"the least (c) can cost with these settings (one decode, the rungs scaled, the four x264): "
        f"{least:.1f} CPU s, {least / b:.3f} of (b)'s\n"
        f"(the decode and x264 alone: {decode_s + encoders:.1f} s, {(decode_s + encoders) / b:.3f}); "
        f"(c) beyond it: {ladder_s + audio_s - least:+.1f} s, of which the audio {audio_s:.1f} s"
    )


def single_audio(source: Path, folder: Path) -> None:
    """The audio rendition alone, as the worker runs it: measured, then encoded (or copied)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    audio = AudioRendition(
        ffmpeg_binary(), str(source), folder, ENCODE, target_lufs=ENCODE.loudness_lufs, copyable=lambda: False
    )
    audio.start()
    audio.join()
    assert audio.error is None, audio.error


async def health_latency(url: str, seconds: int, lua: Path | None = None, token: str | None = None) -> tuple:
    """p50/p99 of /api/health/ from wrk at 4 connections."""
    proc = await asyncio.create_subprocess_exec(
        "wrk",
        "--latency",
        "-t",
        "1",
        "-c",
        "4",
        "-d",
        f"{seconds}s",
        f"{url}/api/health/",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    from catalogue import parse_wrk

    return parse_wrk(out.decode())


async def login_load(url: str, clients: int, stop: asyncio.Event) -> int:
    """N clients logging in back to back (bcrypt cost 12); how many logins completed."""
    from tornado.httpclient import AsyncHTTPClient

    client = AsyncHTTPClient(force_instance=True, max_clients=clients)
    body = json.dumps({"email": "bench@example.com", "password": "bench-password"})
    done = 0

    async def one() -> None:
        nonlocal done
        while not stop.is_set():
            await client.fetch(
                f"{url}/api/accounts/login/",
                method="POST",
                body=body,
                headers={"Content-Type": "application/json"},
                request_timeout=120,
            )
            done += 1

    await asyncio.gather(*(one() for _ in range(clients)))
    client.close()
    return done


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        source = root / "source.mp4"
        audio = "libmp3lame" if args.audio == "mp3" else "aac"
        lavfi_clip(source, "1920x1080", args.seconds, bitrate="8M", audio_codec=audio)
        info = await probe(source)
        loudness, _ = measure(measure_args(ffmpeg_binary(), str(source)))
        copyable = lambda: can_copy_audio(info, ENCODE, lambda: audio_start_gap(source))  # noqa: E731
        copied = plan_audio(loudness, ENCODE.loudness_lufs, copyable).copied
        pipeline = Pipeline()
        await pipeline.start(root / "media", workers=1)
        warm = lavfi_clip(root / "warm.mp4", "320x240", 1, audio=False)
        await pipeline.run(warm)  # start the pool's worker, as a running server has
        times: dict[str, list[float]] = {"a": [], "b": [], "c": [], "d": []}
        for _ in range(args.repeat):
            times["d"].append(single_pass(source, root / "d", info, as_pipeline=True, audio_inside=True))
            times["c"].append(single_pass(source, root / "c", info, as_pipeline=True))
            times["b"].append(per_rung(source, root / "b", info))
            times["a"].append(await pipeline.run(source))
        await pipeline.stop()
        names = {
            "a": "(a) pipeline end to end",
            "b": "(b) one FFmpeg per rung",
            "c": "(c) the commands by hand (ladder + audio beside it)",
            "d": "(d) before: the audio inside the ladder's command",
        }
        med, text = medians_table({names[k]: times[k] for k in "abcd"}, args.seconds)
        a, b, c, d = (med[names[k]] for k in "abcd")
        print(
            f"CMAF ladder of a 1080p30 {args.seconds} s clip with {args.audio.upper()} audio "
            f"({'copied' if copied else 'encoded'} once by the pipeline; (b) encodes it per rung), "
            f"{len(plan_rungs(info))} rungs, x264 {ENCODE.preset}, CRF {ENCODE.crf}, "
            f"median of {args.repeat}\n"
        )
        print(text)
        print(f"\n(a)/(c) = {a / c:.3f} (target <= 1.05)   (a)/(b) = {a / b:.3f} (target <= 0.60)")
        print(f"(c)/(b) = {c / b:.3f}   (d)/(b) = {d / b:.3f} (the audio inside the ladder's FFmpeg, before)")

        pipeline = Pipeline()
        await pipeline.start(root / "media2", workers=2)
        users = pipeline.services.accounts
        await users.ensure_superuser("bench@example.com", "bench-password")
        await pipeline.services.throttle.limiter.collection.drop()
        pipeline.settings.accounts.rate_limit_login = "1000000/60"
        idle = await health_latency(pipeline.url, 5)
        busy = [asyncio.create_task(pipeline.run(source)) for _ in range(2)]
        await asyncio.sleep(2)
        transcoding = await health_latency(pipeline.url, 8)
        stop = asyncio.Event()
        logins = asyncio.create_task(login_load(pipeline.url, 16, stop))
        await asyncio.sleep(1)
        with_logins = await health_latency(pipeline.url, 6)
        stop.set()
        completed = await logins
        await asyncio.gather(*busy)
        await pipeline.stop()
        print("\nGET /api/health/ (wrk, 4 connections)\n")
        print(
            table(
                ["while", "req/s", "p50 ms", "p99 ms"],
                [
                    ("idle", *idle),
                    ("2 transcodes run", *transcoding),
                    (f"2 transcodes + 16 logins ({completed} done)", *with_logins),
                ],
            )
        )
        print("\ntarget: p99 < 25 ms while 16 logins hash passwords and 2 transcodes run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--first-playable", action="store_true", help="time to first playable only")
    parser.add_argument("--lengths", default="60,300", help="source lengths for --first-playable, s")
    parser.add_argument(
        "--audio", choices=("aac", "mp3"), default="aac", help="the source's audio (MP3 is never copied)"
    )
    parser.add_argument("--remux", action="store_true", help="the remux path side by side only")
    parser.add_argument("--storyboard", action="store_true", help="the storyboard's share only")
    parser.add_argument("--threads", action="store_true", help="x264 threads per rung only")
    parser.add_argument("--breakdown", action="store_true", help="where the CPU of (b) and (c) goes")
    parser.add_argument("--loudness", action="store_true", help="loudness before/after and its cost only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for flag, part in (
        (args.first_playable, first_playable),
        (args.remux, remux_side_by_side),
        (args.storyboard, storyboard_share),
        (args.threads, thread_settings),
        (args.breakdown, breakdown),
        (args.loudness, loudness_report),
    ):
        if flag:
            asyncio.run(part(args))
            return
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
