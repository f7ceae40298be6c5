"""Quality per byte: AV1 (SVT-AV1) rungs against the H.264 (x264) ladder, measured with libvmaf.

Makes its own short 1080p30 sources (nothing is downloaded), of three kinds:
  synthetic  FFmpeg's testsrc2: sharp edges, text, a moving gradient;
  cartoon    flat-colour hard-edged shapes moving over a gradient sky, a scrolling pixel-art band;
  camera     a handheld pan over a natural-looking still (multi-octave Perlin noise: the 1/f texture of
             rock or foliage), lens softness and temporal sensor grain. It is made from FFmpeg's filters
             alone; `--photo PATH` adds a fourth source, `photo`, panned the same way over a real picture.
Then, for every rung of config.yaml's enabled `transcode.ladder` (capped as transcode/ladder.py caps
them: no rung above the source, peak bitrate the rung's max_kbps, never above 1.3x the source's) it
encodes the whole ladder in one FFmpeg pass per codec and CRF, as the pipeline does:
  H.264: x264 at config's preset, at config's CRF and around it (the BD-rate curve);
  AV1:   SVT-AV1 at each candidate preset and CRF, with the same caps, GOP and forced keyframes;
and measures each rung's kbit/s, its VMAF against the source scaled to the rung (libvmaf of the pinned
FFmpeg, vmaf_v0.6.1, every `--subsample`th frame) and the ladder's encode time.

It prints the rows, then one summary table per AV1 preset: per source and rung the BD-rate of AV1
against H.264 over the CRF points, and "AV1 bytes / H.264 bytes at VMAF within 1 point" (the AV1 curve
read at the H.264 rung's VMAF minus 1); their medians; the AV1 pass's time against the H.264 ladder's; and
which fixed AV1 CRF keeps the median VMAF within 1 point of H.264 for the fewest bytes (what the AV1
job's `config.yaml` setting is chosen from).

With --per-title: the fixed CRF's top-rung VMAF across the sources (the baseline) against the
pipeline's own probe (transcode/pertitle.py: a few sampled seconds at two CRFs, VMAF, a log-linear fit
to `--target-vmaf`); then the whole ladder at the chosen CRF: its top rung's VMAF, its bytes against the
fixed CRF's ladder, and the probe's time (wall and CPU) as a share of the fixed-CRF ladder's encode.

    .venv/bin/python bench/quality.py [--seconds 8] [--sources synthetic,cartoon,camera] [--photo PNG]
                                      [--av1-presets 10] [--av1-crfs 32,38,44,50] [--h264-crfs 19,23,27,31]
    .venv/bin/python bench/quality.py --per-title [--target-vmaf 93] [--codecs h264,av1]

The FFmpeg is always imageio-ffmpeg's (the pinned 9.0.2 with libsvtav1 and libvmaf), whatever is on PATH.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import table  # noqa: E402

# Never inflate (transcode/ladder.py MAX_INFLATION): no rung's cap above this many times the source's.
MAX_INFLATION = 1.3
# VMAF every 3rd frame: 1080p 10 s in 11 s instead of 27 s, within 0.02 of every frame (REPORT.md §3).
VMAF_SUBSAMPLE = 3
# AV1 "as good as" H.264: within this many VMAF points (the target).
VMAF_SLACK = 1.0
# A BD-rate needs the two curves to share a VMAF range at least this wide; below it (both codecs near
# VMAF 100 on easy content) there is no curve to compare and the cell says so.
MIN_OVERLAP = 0.5
FPS = 30
SOURCES = ("synthetic", "cartoon", "camera")


# --- pure helpers (tests/test_quality_bench.py) ------------------------------------------------------


@dataclass(frozen=True)
class Rung:
    height: int
    width: int
    max_kbps: int

    @property
    def name(self) -> str:
        return f"{self.height}p"


def even(value: float) -> int:
    """The nearest even number ≥ 2, as transcode/ladder.py rounds widths."""
    return max(2, math.floor(value / 2 + 0.5) * 2)


def plan_rungs(width: int, height: int, video_kbps: int, ladder: Sequence[tuple[int, int]]) -> list[Rung]:
    """transcode/ladder.py's plan_rungs for the bench: the (height, max_kbps) rows at or below the
    source's height (the smallest always), widths even with the aspect kept, each cap the row's max_kbps
    but never above 1.3x the source's video bitrate when it is known."""
    rows = sorted(ladder)
    rows = [row for row in rows if row[0] <= height] or rows[:1]
    ceiling = int(video_kbps * MAX_INFLATION) if video_kbps > 0 else None
    return [
        Rung(h, even(width * h / height), max(1, min(cap, ceiling)) if ceiling is not None else cap)
        for h, cap in rows
    ]


def parse_vmaf_log(text: str) -> float:
    """The pooled mean VMAF of a libvmaf JSON log (log_fmt=json)."""
    return float(json.loads(text)["pooled_metrics"]["vmaf"]["mean"])


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (small dense systems)."""
    n = len(vector)
    a = [[*row, v] for row, v in zip(matrix, vector, strict=True)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(n):
            if r != col and a[col][col]:
                f = a[r][col] / a[col][col]
                a[r] = [x - f * y for x, y in zip(a[r], a[col], strict=True)]
    return [a[i][n] / a[i][i] for i in range(n)]


def polyfit(xs: Sequence[float], ys: Sequence[float], degree: int) -> list[float]:
    """Least-squares polynomial coefficients, lowest power first (numpy.polyfit reversed)."""
    powers = [[x**k for k in range(degree + 1)] for x in xs]
    normal = [[sum(p[i] * p[j] for p in powers) for j in range(degree + 1)] for i in range(degree + 1)]
    rhs = [sum(p[i] * y for p, y in zip(powers, ys, strict=True)) for i in range(degree + 1)]
    return _solve(normal, rhs)


def _integral(coeffs: Sequence[float], lo: float, hi: float) -> float:
    return sum(c * (hi ** (k + 1) - lo ** (k + 1)) / (k + 1) for k, c in enumerate(coeffs))


def bd_rate(
    rates_ref: Sequence[float],
    quality_ref: Sequence[float],
    rates_test: Sequence[float],
    quality_test: Sequence[float],
) -> float | None:
    """Bjøntegaard delta rate (VCEG-M33) of `test` against `ref`, in per cent: the mean difference of
    log-rate at equal quality over the quality range both curves cover. Each curve is log10(rate) as a
    least-squares polynomial of quality (cubic with four or more points, else one degree less than the
    points), integrated exactly over the overlap. Negative: `test` needs fewer bits. None when the
    curves share less than MIN_OVERLAP of quality (e.g. both saturated near VMAF 100).

    numpy is not a dependency, so the fit is done here; quality is centred and scaled before the fit
    so the normal equations stay well conditioned."""
    lo = max(min(quality_ref), min(quality_test))
    hi = min(max(quality_ref), max(quality_test))
    if hi - lo < MIN_OVERLAP:
        return None
    centre = (lo + hi) / 2
    scale = (hi - lo) / 2

    def mean_log_rate(rates: Sequence[float], quality: Sequence[float]) -> float:
        xs = [(q - centre) / scale for q in quality]
        ys = [math.log10(r) for r in rates]
        coeffs = polyfit(xs, ys, min(3, len(xs) - 1))
        return _integral(coeffs, -1.0, 1.0) / 2.0

    diff = mean_log_rate(rates_test, quality_test) - mean_log_rate(rates_ref, quality_ref)
    return (10**diff - 1) * 100


def rate_at_quality(points: Sequence[tuple[float, float]], target: float) -> tuple[float, str]:
    """The rate at which a (rate, quality) curve reaches `target`: log-rate interpolated linearly in
    quality between the two points around it. Out of the measured range the nearest point's rate is
    given with a bound: "≤" (even the cheapest point beats the target) or ">" (no point reaches it)."""
    pts = sorted(points, key=lambda p: p[1])
    if target <= pts[0][1]:
        return pts[0][0], "≤"
    if target > pts[-1][1]:
        return pts[-1][0], ">"
    for (r1, q1), (r2, q2) in itertools.pairwise(pts):
        if q1 <= target <= q2:
            f = (target - q1) / ((q2 - q1) or 1.0)
            return math.exp(math.log(r1) + f * (math.log(r2) - math.log(r1))), ""
    raise AssertionError("unreachable")


def crf_for_target(points: Sequence[tuple[float, float]], target: float, lo: int, hi: int) -> float:
    """The CRF whose VMAF is `target`, from (crf, vmaf) probe points: linear between the two points
    around it, else extrapolated from the nearest pair, clamped to [lo, hi]. A flat pair (saturated
    VMAF) gives the clamp on the cheap side when it is above the target."""
    pts = sorted(points)
    pairs = list(itertools.pairwise(pts))
    pick = None
    for (c1, v1), (c2, v2) in pairs:
        if min(v1, v2) <= target <= max(v1, v2) and v1 != v2:
            pick = c1 + (v1 - target) * (c2 - c1) / (v1 - v2)
            break
    if pick is None:
        (c1, v1), (c2, v2) = pairs[0] if target > pts[0][1] else pairs[-1]
        if abs(v1 - v2) < 1e-6:
            pick = hi if v2 >= target else lo
        else:
            pick = c1 + (v1 - target) * (c2 - c1) / (v1 - v2)
    return min(max(pick, lo), hi)


# --- FFmpeg ------------------------------------------------------------------------------------------


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


CPU: dict[str, float] = {}


def run(args: Sequence[str]) -> float:
    """Wall seconds of one FFmpeg; its CPU seconds (user + sys) are left in CPU["last"]."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    done = subprocess.run(
        [ffmpeg(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *map(str, args)],
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - start
    if done.returncode:
        sys.exit(f"FFmpeg failed: {done.stderr[-2000:]}\n{' '.join(map(str, args))}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU["last"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall


SOURCE_ENCODE = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-an"]


def make_source(kind: str, path: Path, seconds: float, photo: Path | None = None) -> Path:
    """A 1080p30 near-lossless H.264 clip of one kind (see the module's docstring)."""
    d = seconds
    if kind == "synthetic":
        run(
            [
                "-f",
                "lavfi",
                "-i",
                f"testsrc2=size=1920x1080:rate={FPS}",
                "-t",
                d,
                *SOURCE_ENCODE,
                "-crf",
                10,
                path,
            ]
        )
    elif kind == "cartoon":
        box = "drawbox=x='{x}':y='{y}':w={w}:h={h}:color={c}:t={t}"
        shapes = []
        for x, y, w, h, c in (
            ("mod(t*240\\,1700)", "200", 220, 220, "#ff4020"),
            ("1500-mod(t*120\\,1300)", "500+100*sin(t*2)", 300, 160, "#ffe040"),
            ("200+150*sin(t)", "620-mod(t*60\\,300)", 180, 120, "#40d070"),
        ):
            shapes += [
                box.format(x=x, y=y, w=w, h=h, c=c, t="fill"),
                box.format(x=x, y=y, w=w, h=h, c="black", t=8),
            ]
        graph = (
            "[1:v]scale=1920:240:flags=neighbor,format=yuv420p,lutyuv=y='val*0.5+40'[band];"
            f"[0:v]format=yuv420p,{','.join(shapes)},drawbox=x=0:y=780:w=1920:h=60:color=#306020:t=fill[bg];"
            "[bg][band]overlay=0:840[v]"
        )
        run([
            "-f", "lavfi", "-i", "gradients=s=1920x1080:r=30:c0=#203a80:c1=#80c0ff:x0=0:y0=0:x1=0:y1=1080"
            ":nb_colors=2:speed=0.002",
            "-f", "lavfi", "-i", "cellauto=s=480x60:rule=110:r=30:random_fill_ratio=0.5:seed=1",
            "-filter_complex", graph, "-map", "[v]", "-t", d, *SOURCE_ENCODE, "-crf", 10, path,
        ])  # fmt: skip
    elif kind in ("camera", "photo"):
        still = path.with_suffix(".png")
        if kind == "photo":
            if photo is None:
                sys.exit("--photo PATH is needed for the photo source")
            run(["-i", photo, "-vf", "scale=2880:1620:flags=lanczos:force_original_aspect_ratio=increase,"
                 "crop=2880:1620", "-frames:v", 1, still])  # fmt: skip
        else:
            perlin = (
                "perlin=s=2880x1620:tscale=0:random_mode=seed"
                ":octaves={o}:persistence={p}:xscale={s}:yscale={s}:seed={seed}"
            )
            run([
                "-f", "lavfi", "-i", perlin.format(o=9, p=0.72, s=5, seed=7),
                "-f", "lavfi", "-i", perlin.format(o=4, p=0.5, s=1.5, seed=11),
                "-f", "lavfi", "-i", perlin.format(o=4, p=0.5, s=2, seed=23),
                "-filter_complex",
                "[0:v]format=gray,lut=c0='clip((val-128)*2.6+120,16,235)'[y];"
                "[1:v]format=gray,lut=c0='clip((val-128)*0.9+110,16,240)'[u];"
                "[2:v]format=gray,lut=c0='clip((val-128)*0.9+140,16,240)'[v];"
                "[y][u][v]mergeplanes=0x001020:yuv444p,format=rgb24",
                "-frames:v", 1, still,
            ])  # fmt: skip
        # A handheld pan: a slow sweep with a small bob, a touch of lens softness, temporal sensor grain
        # (crf 14 for the source: grain at crf 10 makes an unwieldy 180 Mbit/s).
        pan = (
            f"crop=1920:1080:x='(in_w-out_w)*t/{d}':y='(in_h-out_h)*(0.5+0.4*sin(t/2))+6*sin(t*5)',"
            "gblur=sigma=0.5,noise=alls=4:allf=t+u,format=yuv420p"
        )
        run(
            [
                "-loop",
                1,
                "-framerate",
                FPS,
                "-i",
                still,
                "-vf",
                pan,
                "-t",
                d,
                *SOURCE_ENCODE,
                "-crf",
                14,
                path,
            ]
        )
    else:
        sys.exit(f"unknown source {kind!r}: {', '.join((*SOURCES, 'photo'))}")
    return path


def source_kbps(path: Path, seconds: float) -> int:
    return int(path.stat().st_size * 8 / seconds / 1000)


def encoder_args(codec: str, rung: Rung, preset: str, crf: int, segment_s: int) -> list[str]:
    """One rung's encoder options, as the pipeline sets them: CRF under the rung's peak cap (bufsize
    twice it), a keyframe every segment forced at the same instants in every rung."""
    gop = FPS * segment_s
    keys = ["-g", gop, "-force_key_frames", f"expr:gte(t,n_forced*{segment_s})"]
    cap = ["-maxrate", f"{rung.max_kbps}k", "-bufsize", f"{rung.max_kbps * 2}k"]
    if codec == "h264":
        return [
            "-c:v", "libx264", "-preset", preset, "-profile:v", "high", "-crf", crf, *cap,
            *keys, "-keyint_min", gop, "-sc_threshold", 0,
        ]  # fmt: skip
    # Closed GOP with real key frames (irefresh-type=2), no scene-change keys: switch points on the
    # same boundaries as the H.264 rungs (REPORT.md §2).
    return [
        "-c:v", "libsvtav1", "-preset", preset, "-crf", crf, *cap, *keys,
        "-svtav1-params", f"keyint={gop}:irefresh-type=2:scd=0",
    ]  # fmt: skip


def encode_ladder(
    src: Path,
    out: Path,
    rungs: list[Rung],
    codec: str,
    preset: str,
    crf: int,
    segment_s: int,
    top_crf: int | None = None,
) -> tuple[dict[int, Path], float, float]:
    """Every rung in one FFmpeg pass (decode once, cascade of bicubic scales as the pipeline does), the
    top one at `top_crf` when given (a per-title choice): the files by height, wall seconds and CPU
    seconds."""
    graph = [f"[0:v:0]format=yuv420p,split=1[c{len(rungs)}]"]
    for i in range(len(rungs) - 1, -1, -1):
        r = rungs[i]
        scaled = f"[c{i + 1}]scale={r.width}:{r.height}:flags=bicubic,setsar=1"
        graph.append(f"{scaled},split=2[v{i}][c{i}]" if i else f"{scaled}[v{i}]")
    args: list[object] = ["-i", src, "-filter_complex", ";".join(graph)]
    files = {}
    for i, r in enumerate(rungs):
        rung_crf = top_crf if top_crf is not None and i == len(rungs) - 1 else crf
        files[r.height] = out / f"{codec}-p{preset}-crf{rung_crf}-{r.name}.mp4"
        args += [
            "-map", f"[v{i}]", *encoder_args(codec, r, preset, rung_crf, segment_s), "-an", files[r.height]
        ]  # fmt: skip
    wall = run(args)
    return files, wall, CPU["last"]


def vmaf(
    src: Path, files: dict[int, Path], rungs: list[Rung], subsample: int, logs: Path
) -> dict[int, float]:
    """Each file's VMAF (vmaf_v0.6.1, pooled mean) against the source scaled to its rung (bicubic), in
    one FFmpeg that decodes the source once. PTS are reset on both sides (the H.264 rung starts late by
    its B-frame delay; libvmaf pairs frames by timestamp)."""
    chosen = [r for r in rungs if r.height in files]
    n = len(chosen)
    graph = [f"[{n}:v:0]format=yuv420p,split={n}" + "".join(f"[s{i}]" for i in range(n))]
    args: list[object] = []
    outs: list[object] = []
    for i, r in enumerate(chosen):
        args += ["-i", files[r.height]]
        log = logs / f"{files[r.height].stem}.json"
        graph.append(f"[s{i}]scale={r.width}:{r.height}:flags=bicubic,setsar=1,setpts=PTS-STARTPTS[r{i}]")
        graph.append(f"[{i}:v:0]format=yuv420p,setpts=PTS-STARTPTS[d{i}]")
        graph.append(
            f"[d{i}][r{i}]libvmaf=model=version=vmaf_v0.6.1:n_threads=2:n_subsample={subsample}"
            f":log_fmt=json:log_path={log}[o{i}]"
        )
        outs += ["-map", f"[o{i}]", "-f", "null", "-"]
    run([*args, "-i", src, "-filter_complex", ";".join(graph), *outs])
    return {r.height: parse_vmaf_log((logs / f"{files[r.height].stem}.json").read_text()) for r in chosen}


# --- the bench ---------------------------------------------------------------------------------------


@dataclass
class Point:
    source: str
    codec: str
    preset: str
    crf: int
    height: int
    kbps: float
    vmaf: float
    encode_s: float  # the whole ladder's pass
    encode_cpu_s: float


def config_transcode() -> tuple[str, int, int, list[tuple[int, int]], float]:
    """preset, CRF, segment seconds and enabled (height, max_kbps) rows of config.yaml's transcode, and
    the per-title target (transcode.target_vmaf once the setting exists; the issue's 93 until then)."""
    from core.config import load_settings

    s = load_settings(ROOT / "config.yaml", environ={}, overrides={"server": {"secret_key": "bench"}})
    t = s.transcode
    ladder = [(row.height, row.max_kbps) for row in t.ladder if row.enabled]
    return t.preset, t.crf, t.segment_s, ladder, float(getattr(t, "target_vmaf", 93.0))


def measure(args: argparse.Namespace, work: Path) -> list[Point]:
    preset, crf, segment_s, ladder, _ = config_transcode()
    h264_crfs = sorted({*(int(c) for c in args.h264_crfs.split(",")), crf})
    points: list[Point] = []
    for name in args.sources.split(","):
        src = make_source(name, work / f"{name}.mp4", args.seconds, args.photo)
        rungs = plan_rungs(1920, 1080, source_kbps(src, args.seconds), ladder)
        plan = [("h264", preset, c) for c in h264_crfs]
        plan += [
            ("av1", p, c) for p in args.av1_presets.split(",") for c in map(int, args.av1_crfs.split(","))
        ]
        for codec, p, c in plan:
            files, wall, cpu = encode_ladder(src, work, rungs, codec, p, c, segment_s)
            scores = vmaf(src, files, rungs, args.subsample, work)
            for r in rungs:
                kbps = files[r.height].stat().st_size * 8 / args.seconds / 1000
                points.append(Point(name, codec, p, c, r.height, kbps, scores[r.height], wall, cpu))
            top = rungs[-1].height
            print(
                f"  {name} {codec} p{p} crf {c}: {wall:.1f} s ({cpu:.1f} CPU s), "
                f"{top}p {points[-1].kbps:.0f} kbit/s VMAF {scores[top]:.2f}",
                file=sys.stderr,
                flush=True,
            )
            for f in files.values():
                f.unlink()
    return points


def fmt_ratio(value: float, bound: str = "") -> str:
    return f"{bound}{value:.2f}x"


def report(points: list[Point], args: argparse.Namespace) -> None:
    preset, crf, *_ = config_transcode()
    sources = list(dict.fromkeys(p.source for p in points))
    heights = sorted({p.height for p in points}, reverse=True)

    def curve(source: str, codec: str, p: str, height: int) -> list[Point]:
        return sorted(
            (x for x in points if (x.source, x.codec, x.preset, x.height) == (source, codec, p, height)),
            key=lambda x: x.crf,
        )

    print(f"\n### Every rung ({args.seconds:g} s 1080p30 sources; VMAF n_subsample={args.subsample})\n")
    rows = [
        (
            p.source,
            f"{p.height}p",
            p.codec,
            p.preset,
            p.crf,
            round(p.kbps),
            f"{p.vmaf:.2f}",
            p.encode_s,
            p.encode_cpu_s,
        )
        for p in points
    ]
    print(
        table(
            ["source", "rung", "codec", "preset", "CRF", "kbit/s", "VMAF", "ladder s", "ladder CPU s"], rows
        )
    )

    for av1_preset in args.av1_presets.split(","):
        print(f"\n### AV1 (SVT-AV1 preset {av1_preset}) against H.264 (x264 {preset}, CRF {crf})\n")
        rows, bds, ratios, times = [], [], [], []
        for s in sources:
            for h in heights:
                ref = curve(s, "h264", preset, h)
                test = curve(s, "av1", av1_preset, h)
                if not ref or not test:
                    continue
                bd = bd_rate(
                    [x.kbps for x in ref],
                    [x.vmaf for x in ref],
                    [x.kbps for x in test],
                    [x.vmaf for x in test],
                )
                base = next(x for x in ref if x.crf == crf)
                rate, bound = rate_at_quality([(x.kbps, x.vmaf) for x in test], base.vmaf - VMAF_SLACK)
                ratio = rate / base.kbps
                if bd is not None:
                    bds.append(bd)
                ratios.append(ratio)
                rows.append((
                    s, f"{h}p", round(base.kbps), f"{base.vmaf:.2f}",
                    "n/a: no shared VMAF range" if bd is None else f"{bd:+.1f} %",
                    f"{rate:.0f}", fmt_ratio(ratio, bound),
                ))  # fmt: skip
            h264_ladder = curve(s, "h264", preset, heights[0])
            av1_ladder = curve(s, "av1", av1_preset, heights[0])
            base = next(x for x in h264_ladder if x.crf == crf)
            for a in av1_ladder:
                times.append((s, a.crf, a.encode_s / base.encode_s, a.encode_cpu_s / base.encode_cpu_s))
        print(table(
            ["source", "rung", f"H.264 CRF {crf} kbit/s", "H.264 VMAF", "BD-rate AV1 vs H.264",
             "AV1 kbit/s at VMAF-1", "AV1 / H.264 bytes at VMAF-1"],
            rows,
        ))  # fmt: skip
        bounded = sum(1 for r in rows if r[-1][0] in "≤>")
        print(
            f"\nmedian BD-rate {statistics.median(bds):+.1f} % over {len(bds)} rungs "
            f"({len(rows) - len(bds)} without a shared VMAF range); "
            "median AV1/H.264 bytes at VMAF within 1 point "
            f"{statistics.median(ratios):.2f}x over {len(ratios)} rungs ({bounded} at the edge of the AV1 "
            "CRF range: the nearest point's ratio) — target ≤ 0.65x"
            if bds
            else "\nno BD-rate: no rung has a shared VMAF range"
        )
        rows = []
        for c in sorted({t[1] for t in times}):
            walls = [t[2] for t in times if t[1] == c]
            cpus = [t[3] for t in times if t[1] == c]
            deltas, sizes = [], []
            for s in sources:
                for h in heights:
                    a = next((x for x in curve(s, "av1", av1_preset, h) if x.crf == c), None)
                    b = next((x for x in curve(s, "h264", preset, h) if x.crf == crf), None)
                    if a and b:
                        deltas.append(a.vmaf - b.vmaf)
                        sizes.append(a.kbps / b.kbps)
            rows.append((
                c, fmt_ratio(statistics.median(sizes)), f"{statistics.median(deltas):+.2f}",
                f"{min(deltas):+.2f}",
                fmt_ratio(statistics.median(walls)), fmt_ratio(statistics.median(cpus)),
            ))  # fmt: skip
        print(f"\nFixed AV1 CRF against H.264 CRF {crf}, medians over sources and rungs; time = the AV1 pass "
              "over the H.264 ladder's, same rungs (target ≤ 1.5x)\n")  # fmt: skip
        print(table(
            ["AV1 CRF", "bytes x H.264", "VMAF - H.264", "worst VMAF - H.264", "time x H.264 (wall)",
             "time x H.264 (CPU)"],
            rows,
        ))  # fmt: skip


def per_title(args: argparse.Namespace, work: Path, points: list[Point]) -> None:
    """The fixed CRF's top-rung VMAF per source and codec (the baseline) against the pipeline's own probe
    (transcode/pertitle.py: the windows it samples, its CRFs, its fit) and the whole ladder re-encoded at
    the CRF it chose; the probe's cost against the fixed-CRF ladder's encode, wall and CPU."""
    import asyncio

    from transcode import pertitle
    from transcode.probe import probe as probe_source

    preset, crf, segment_s, ladder, target = config_transcode()
    target = args.target_vmaf or target
    av1_preset = args.av1_presets.split(",")[0]
    fixed_crf = {"h264": crf, "av1": args.av1_crf}
    rows, summary = [], []
    for name in args.sources.split(","):
        src = work / f"{name}.mp4"
        if not src.exists():
            make_source(name, src, args.seconds, args.photo)
        info = asyncio.run(probe_source(src))
        rungs = plan_rungs(1920, 1080, source_kbps(src, args.seconds), ladder)
        top = rungs[-1]
        for codec in args.codecs.split(","):
            p = preset if codec == "h264" else av1_preset
            # the baseline: the whole ladder at the fixed CRF (its time is what the probe is held against)
            fixed = fixed_crf[codec]
            files, ladder_s, ladder_cpu = encode_ladder(src, work, rungs, codec, p, fixed, segment_s)
            fixed_vmaf = vmaf(src, {top.height: files[top.height]}, rungs, args.subsample, work)[top.height]
            fixed_bytes = sum(f.stat().st_size for f in files.values())
            for f in files.values():
                f.unlink()
            # the probe, as the transcode job runs it
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.monotonic()
            choice = pertitle.choose_crf(
                ffmpeg(),
                src,
                info,
                top.width,
                top.height,
                lambda c, codec=codec, p=p, top=top: [
                    str(a) for a in encoder_args(codec, top, p, c, segment_s)
                ],
                pertitle.PROBES[codec],
                target,
                work / "probe",
            )
            probe_s = time.monotonic() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            probe_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            # the check: the whole ladder at the chosen CRF
            below = pertitle.PROBES[codec].below_top(choice.crf)
            files, _, _ = encode_ladder(src, work, rungs, codec, p, below, segment_s, top_crf=choice.crf)
            tuned_vmaf = vmaf(src, {top.height: files[top.height]}, rungs, args.subsample, work)[top.height]
            tuned_bytes = sum(f.stat().st_size for f in files.values())
            for f in files.values():
                f.unlink()
            needed_s = probe_cpu / (0.15 * ladder_cpu / args.seconds)
            rows.append((
                name, codec, f"{fixed} → {fixed_vmaf:.2f}",
                ", ".join(f"{c}: {v:.1f}" for c, v in choice.points), choice.crf,
                f"{choice.estimated_vmaf:.1f}", f"{tuned_vmaf:.2f}", f"{tuned_vmaf - target:+.2f}",
                f"{fixed_bytes * 8 / args.seconds / 1000:.0f}",
                f"{tuned_bytes * 8 / args.seconds / 1000:.0f}",
                fmt_ratio(tuned_bytes / fixed_bytes),
                f"{probe_s:.1f} / {probe_cpu:.1f}", f"{ladder_s:.1f} / {ladder_cpu:.1f}",
                f"{probe_s / ladder_s:.0%} / {probe_cpu / ladder_cpu:.0%}", f"{needed_s / 60:.1f}",
            ))  # fmt: skip
            summary.append((codec, fixed_vmaf, tuned_vmaf))
            print(
                f"  per-title {name} {codec}: crf {choice.crf} VMAF {tuned_vmaf:.2f} "
                f"(fixed {fixed_vmaf:.2f}); "
                f"probe {probe_s:.1f} s, ladder {ladder_s:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    print(
        f"\n### Per-title CRF: top rung ({top.name}) to VMAF {target:g}; {args.seconds:g} s sources; probe: "
        f"{pertitle.WINDOWS} x {pertitle.WINDOW_S:g} s sampled, CRFs "
        f"{ {c: pertitle.PROBES[c].crfs for c in args.codecs.split(',')} }\n"
    )
    print(table(
        ["source", "codec", "fixed CRF → VMAF", "probe CRF: VMAF", "chosen CRF", "fit VMAF", "VMAF at it",
         "- target", "ladder kbit/s fixed", "ladder kbit/s per-title", "bytes x fixed",
         "probe s wall / CPU", "ladder s wall / CPU", "probe / ladder wall / CPU",
         "length for ≤ 15 % (CPU), min"],
        rows,
    ))  # fmt: skip
    for codec in args.codecs.split(","):
        fixed = [f for c, f, _ in summary if c == codec]
        tuned = [t for c, _, t in summary if c == codec]
        hits = sum(1 for t in tuned if abs(t - target) <= 2)
        print(
            f"\n{codec}: fixed CRF top-rung VMAF {min(fixed):.2f}-{max(fixed):.2f} "
            f"(spread {max(fixed) - min(fixed):.2f}); per-title {min(tuned):.2f}-{max(tuned):.2f} "
            f"(spread {max(tuned) - min(tuned):.2f}); {hits}/{len(tuned)} within {target:g} ± 2"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8, help="length of each source")
    parser.add_argument("--sources", default=",".join(SOURCES), help="of synthetic,cartoon,camera,photo")
    parser.add_argument("--photo", type=Path, help="a still picture for the `photo` source")
    parser.add_argument("--h264-crfs", default="19,23,27,31", help="x264 CRFs (config's is always added)")
    parser.add_argument("--av1-presets", default="10", help="SVT-AV1 presets")
    parser.add_argument("--av1-crfs", default="32,38,44,50", help="SVT-AV1 CRFs")
    parser.add_argument("--subsample", type=int, default=VMAF_SUBSAMPLE, help="libvmaf n_subsample")
    parser.add_argument("--per-title", action="store_true", help="the per-title CRF probe only")
    parser.add_argument("--codecs", default="h264", help="codecs for --per-title: h264,av1")
    parser.add_argument("--av1-crf", type=int, default=38, help="AV1's fixed CRF, for --per-title")
    parser.add_argument("--target-vmaf", type=float, default=None, help="default: transcode.target_vmaf, 93")
    parser.add_argument("--json", type=Path, help="also write every measured point here")
    args = parser.parse_args()
    if args.photo and "photo" not in args.sources.split(","):
        args.sources += ",photo"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="videoflix-quality-") as tmp:
        work = Path(tmp)
        if args.per_title:
            per_title(args, work, [])
        else:
            points = measure(args, work)
            if args.json:
                args.json.write_text("\n".join(json.dumps(p.__dict__) for p in points) + "\n")
            report(points, args)
    load = Path("/proc/loadavg").read_text().split()[0]
    cores = len(os.sched_getaffinity(0))
    print(f"\n(bench took {time.monotonic() - started:.0f} s on {cores} cores, "
          f"load {load}; FFmpeg {ffmpeg()})")  # fmt: skip


if __name__ == "__main__":
    main()
