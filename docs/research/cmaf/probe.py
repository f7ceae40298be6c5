#!/usr/bin/env python3
"""Per-title CRF probe: cut K windows of W s from the source at the top rung's size into one lossless reference,
encode it at 2-3 CRFs, VMAF each, interpolate the CRF that hits the target VMAF.
Usage: probe.py SRC CODEC(h264|av1) [--target 93] [--crfs 19,23,27] [--windows 3] [--win 2] [--height 1080] [--preset P]"""
import argparse, json, subprocess, time, tempfile
from pathlib import Path
FF = "/work/main/.venv/lib/python3.11/site-packages/imageio_ffmpeg/binaries/ffmpeg-linux-x86_64-v9.0.2"

def duration(src):  # container duration via the pip ffmpeg (no ffprobe): decode-free read of the header
    import re
    err = subprocess.run([FF, "-hide_banner", "-i", src], capture_output=True, text=True).stderr
    h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", err).groups()  # sketch only; the app has probe.py
    return int(h) * 3600 + int(m) * 60 + float(s)

def ff(*args):
    subprocess.run([FF, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *map(str, args)], check=True)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src"); ap.add_argument("codec")
    ap.add_argument("--target", type=float, default=93); ap.add_argument("--crfs", default=None)
    ap.add_argument("--windows", type=int, default=3); ap.add_argument("--win", type=float, default=2)
    ap.add_argument("--height", type=int, default=1080); ap.add_argument("--preset", default=None)
    a = ap.parse_args()
    crfs = [int(c) for c in (a.crfs or ("19,23,27" if a.codec == "h264" else "30,38,46")).split(",")]
    w, h = (a.height * 16 // 9 + 1) // 2 * 2, a.height
    t0 = time.monotonic(); tmp = Path(tempfile.mkdtemp(prefix="probe-", dir="/work/scratch-cmaf/out"))
    dur = duration(a.src)
    starts = [max(0.0, dur * (i + 1) / (a.windows + 1) - a.win / 2) for i in range(a.windows)]
    # 1. the reference: K windows (input seeking, so only those seconds are decoded), scaled, concatenated, lossless
    inputs = sum((["-ss", f"{s:.3f}", "-t", str(a.win), "-i", a.src] for s in starts), [])
    graph = "".join(f"[{i}:v:0]scale={w}:{h}:flags=bicubic,setsar=1,format=yuv420p,setpts=PTS-STARTPTS[s{i}];" for i in range(a.windows))
    graph += "".join(f"[s{i}]" for i in range(a.windows)) + f"concat=n={a.windows}:v=1:a=0[v]"
    ref = tmp / "ref.mkv"
    ff(*inputs, "-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", ref)
    t_ref = time.monotonic() - t0
    points = []
    for crf in crfs:
        dist = tmp / f"crf{crf}.mkv"
        if a.codec == "h264":
            enc = ["-c:v", "libx264", "-preset", a.preset or "veryfast", "-crf", crf, "-g", 120, "-sc_threshold", 0]
        else:
            enc = ["-c:v", "libsvtav1", "-preset", a.preset or "10", "-crf", crf, "-g", 120, "-svtav1-params", "keyint=120:irefresh-type=2:scd=0"]
        ff("-i", ref, *enc, dist)
        log = tmp / f"crf{crf}.json"
        ff("-i", dist, "-i", ref, "-lavfi", f"[0:v][1:v]libvmaf=n_threads=2:n_subsample=2:log_fmt=json:log_path={log}", "-f", "null", "-")
        score = json.loads(log.read_text())["pooled_metrics"]["vmaf"]["mean"]
        kbps = dist.stat().st_size * 8 / (a.windows * a.win) / 1000
        points.append((crf, round(score, 2), round(kbps)))
    # 2. interpolate: VMAF falls with CRF; linear between the two points around the target, else extrapolate the end pair
    pts = sorted(points)
    pick = None
    for (c1, v1, _), (c2, v2, _) in zip(pts, pts[1:]):
        if v1 >= a.target >= v2:
            pick = c1 + (v1 - a.target) * (c2 - c1) / ((v1 - v2) or 1); break
    if pick is None:
        (c1, v1, _), (c2, v2, _) = (pts[0], pts[1]) if a.target > pts[0][1] else (pts[-2], pts[-1])
        pick = c1 + (v1 - a.target) * (c2 - c1) / ((v1 - v2) or 1)
    lo, hi = (16, 30) if a.codec == "h264" else (20, 55)
    crf = int(round(min(max(pick, lo), hi)))
    print(json.dumps({"src": a.src, "codec": a.codec, "points": points, "crf": crf, "raw": round(pick, 2),
                      "ref_s": round(t_ref, 2), "probe_s": round(time.monotonic() - t0, 2), "seconds_sampled": a.windows * a.win}))

if __name__ == "__main__":
    main()
