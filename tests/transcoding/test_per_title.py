"""Per-title CRF: a short probe aims each title's top rung at `transcode.target_vmaf`, measured with the
same libvmaf scoring on the whole rung; remux, the fixed CRF and a failing probe keep today's ladder."""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
from pathlib import Path

import pytest

from tests.transcoding.helpers import upload, wait_for_status
from transcode import pertitle
from transcode.ffmpeg import ffmpeg_binary
from transcode.ladder import EncodeSettings, ffmpeg_command, plan_rungs
from transcode.pertitle import MAX_REFINES, PROBES, crf_for_target, refine_wanted, vmaf_score, window_starts
from transcode.probe import MediaInfo, probe
from transcode.worker import DONE, JobSpec, Outcome, transcode

pytestmark = pytest.mark.slow

TARGET = 93.0
H264_RANGE = (PROBES["h264"].lo, PROBES["h264"].hi)
# Two rungs; the top one's cap is far above what the clips need, so the CRF alone sets their quality.
LADDER = [
    {"height": 144, "max_kbps": 400, "level": "3.0", "enabled": True},
    {"height": 270, "max_kbps": 8000, "level": "3.0", "enabled": True},
]


@pytest.fixture
def settings_overrides():
    return {
        "transcode": {
            "workers": 1,
            "max_attempts": 1,
            "progress_interval_s": 0.05,
            "preset": "veryfast",
            "segment_s": 2,
            "storyboard": False,
            "target_vmaf": TARGET,
            "per_title_min_s": 0,
            "ladder": LADDER,
        },
        "jobs": {"poll_interval_s": 0.05, "lease_s": 60, "jitter": 0},
    }


# Two kinds of picture at 480x270, 7 s: the test pattern (sharp, flat areas: cheap to encode well) and
# a zooming Mandelbrot set (fine detail everywhere: it needs a much lower CRF for the same VMAF).
SOURCES = {
    "pattern": "testsrc2=size=480x270:rate=25",
    "fractal": "mandelbrot=size=480x270:rate=25",
}


def make_source(path: Path, picture: str, seconds: float = 7.0, *video: str) -> Path:
    """A clip of a lavfi picture: lossless unless other x264 options are given."""
    subprocess.run(
        [
            ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", picture,
            "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            *(video or ("-qp", "0")), str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path


def rung_file(folder: Path, out: Path) -> Path:
    """A rung's CMAF segments joined after their init segment: one fragmented MP4 FFmpeg can read."""
    parts = [folder / "init.mp4", *sorted(folder.glob("seg_*.m4s"))]
    out.write_bytes(b"".join(part.read_bytes() for part in parts))
    return out


def crfs_used(folder: Path) -> set[float]:
    """The CRFs x264 wrote in the rung's own stream (its options SEI: `crf=27.0`)."""
    data = b"".join(part.read_bytes() for part in sorted(folder.glob("seg_*.m4s")))
    return {float(value) for value in re.findall(rb"\bcrf=(\d+\.\d+)", data)}


async def top_rung_vmaf(folder: Path, source: Path, info: MediaInfo, tmp_path: Path) -> float:
    whole = rung_file(folder, tmp_path / f"{folder.name}-whole.mp4")
    return await asyncio.to_thread(
        vmaf_score, ffmpeg_binary(), whole, source, info, info.width, info.height, work=tmp_path / "vmaf"
    )


# --- the choice ------------------------------------------------------------------------------------


def test_the_crf_is_read_where_the_probe_curve_meets_the_target():
    # log(100 - VMAF) is linear in CRF: 96 at 22 and 88 at 28 put 93 (7 of headroom) at 24.97
    assert crf_for_target([(22, 96.0), (28, 88.0)], 93.0, 16, 30) == (25, pytest.approx(93.0, abs=0.1))


def test_a_target_outside_the_probed_crfs_is_extrapolated_and_clamped():
    assert crf_for_target([(22, 90.0), (28, 80.0)], 93.0, 16, 30)[0] == 19  # 18.9
    assert crf_for_target([(22, 99.0), (28, 97.5)], 93.0, 16, 30)[0] == 30  # would be 37
    assert crf_for_target([(22, 60.0), (28, 40.0)], 93.0, 16, 30)[0] == 16


def test_a_saturated_title_gets_the_cheapest_crf_allowed():
    assert crf_for_target([(22, 99.96), (28, 99.97)], 93.0, 16, 30)[0] == 30


def test_a_fit_near_the_probed_crfs_is_trusted_and_a_far_one_is_followed_until_it_lands_on_a_measure():
    probed = (22, 28)
    assert not refine_wanted([(22, 96.0), (28, 88.0)], 25, probed)  # the usual title: two passes
    assert not refine_wanted([(22, 96.0), (28, 88.0)], 31, probed)  # just past: still trusted
    assert refine_wanted([(22, 99.95), (28, 99.9)], 40, probed)  # flat animation: measured there
    assert refine_wanted([(22, 99.95), (28, 99.9), (40, 74.0)], 37, probed)  # then followed
    assert not refine_wanted([(22, 99.95), (28, 99.9), (37, 86.0), (40, 74.0)], 37, probed)


def test_a_steep_curve_is_read_between_its_nearest_measures():
    # flat animation at the top rung: near 100 up to CRF 30, then a cliff (bench/quality.py's cartoon)
    points = [(22, 99.95), (28, 99.9), (36, 90.07), (40, 74.0)]
    assert crf_for_target(points, 93.0, *H264_RANGE)[0] == 35


def test_the_rungs_below_the_top_keep_to_the_range_the_bench_checked():
    assert PROBES["h264"].below_top(25) == 25
    assert PROBES["h264"].below_top(36) == 30
    assert PROBES["av1"].below_top(50) == 50


def test_the_top_rung_alone_is_encoded_at_the_crf_chosen_for_it(tmp_path):
    info = MediaInfo(
        duration=10.0, width=1920, height=1080, rotation=0, fps=30.0, has_audio=False, video_codec="h264"
    )
    rungs = plan_rungs(info)
    settings = EncodeSettings(crf=30, top_crf=36)
    args = ffmpeg_command("ffmpeg", tmp_path / "in.mp4", tmp_path, info, rungs, settings)
    crfs = [args[i + 1] for i, arg in enumerate(args) if arg == "-crf:v"]
    assert crfs == ["30"] * (len(rungs) - 1) + ["36"]


def test_the_sampled_windows_spread_over_the_title_and_stay_inside_it():
    assert window_starts(600.0) == [149.0, 299.0, 449.0]
    assert all(0 <= start <= 8.0 for start in window_starts(10.0))
    assert window_starts(5.0) == [0.0]  # shorter than the windows: the whole title once


# --- the pipeline ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(SOURCES))
async def test_the_top_rung_lands_within_two_vmaf_points_of_the_target(
    api, staff_token, tmp_path, db, settings, kind
):
    source = make_source(tmp_path / f"{kind}.mkv", SOURCES[kind])
    video_id = await upload(api, staff_token, source, title=kind)
    doc = await wait_for_status(db, video_id, "ready", timeout=240)
    folder = (Path(settings.media.root) / doc["hls_path"]).parent
    chosen = doc["encoding"]["crf"]["h264"]
    assert doc["encoding"]["target_vmaf"] == TARGET
    assert 2 <= len(doc["encoding"]["probe"]["h264"]["points"]) <= 2 + MAX_REFINES  # more: far from usual
    assert crfs_used(folder / "270p") == {float(chosen)}
    assert crfs_used(folder / "144p") == {float(PROBES["h264"].below_top(chosen))}
    vmaf = await top_rung_vmaf(folder / "270p", source, await probe(source), tmp_path)
    assert abs(vmaf - TARGET) <= 2, (kind, chosen, vmaf, doc["encoding"])


async def test_a_compliant_source_is_still_remuxed_without_a_probe(api, staff_token, tmp_path, db, settings):
    compliant = ("-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-b:v", "600k", "-maxrate", "600k")
    compliant += ("-bufsize", "1200k")
    source = make_source(tmp_path / "good.mp4", SOURCES["pattern"], 4.0, *compliant)
    video_id = await upload(api, staff_token, source)
    doc = await wait_for_status(db, video_id, "ready", timeout=120)
    folder = (Path(settings.media.root) / doc["hls_path"]).parent
    assert doc["encoding"]["probe"]["h264"] == {"skipped": "remux"}
    assert crfs_used(folder / "270p") == set()  # the source's own stream: no CRF of ours in it
    assert crfs_used(folder / "144p") == {23.0}


async def encode_in_process(
    tmp_path: Path, source: Path, target: float | None, min_s: float = 0.0
) -> tuple[Outcome, Path]:
    """The worker's job run here (so its log is seen): the ladder of `source` into tmp_path/out."""
    info = await probe(source)
    encode = EncodeSettings(
        preset="veryfast",
        segment_s=2,
        storyboard=False,
        ladder=tuple((r["height"], r["max_kbps"], r["level"]) for r in LADDER),
    )
    spec = JobSpec(
        key="per-title",
        ffmpeg=ffmpeg_binary(),
        source=str(source),
        out_dir=str(tmp_path / "out"),
        info=info,
        rungs=tuple(plan_rungs(info, encode)),
        settings=encode,
        timeout_s=240,
        nice=0,
        target_vmaf=target,
        per_title_min_s=min_s,
    )
    return await asyncio.to_thread(transcode, spec), tmp_path / "out"


async def test_without_a_target_every_rung_keeps_the_fixed_crf(tmp_path):
    source = make_source(tmp_path / "pattern.mkv", SOURCES["pattern"], 3.0)
    outcome, out = await encode_in_process(tmp_path, source, None)
    assert outcome.kind == DONE
    assert outcome.encoding == {"crf.h264": 23, "probe.h264": {"skipped": "off"}}
    assert crfs_used(out / "270p") == crfs_used(out / "144p") == {23.0}


async def test_a_source_shorter_than_per_title_min_s_is_not_probed(tmp_path):
    source = make_source(tmp_path / "pattern.mkv", SOURCES["pattern"], 3.0)
    outcome, out = await encode_in_process(tmp_path, source, TARGET, min_s=60)
    assert outcome.encoding == {"crf.h264": 23, "probe.h264": {"skipped": "short"}}
    assert crfs_used(out / "270p") == {23.0}


async def test_a_failing_probe_is_logged_and_the_ladder_is_made_at_the_fixed_crf(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(pertitle, "VMAF_MODEL", "version=no_such_model")  # libvmaf refuses to start
    source = make_source(tmp_path / "pattern.mkv", SOURCES["pattern"], 3.0)
    with caplog.at_level(logging.WARNING, logger="videoflix.transcode"):
        outcome, out = await encode_in_process(tmp_path, source, TARGET)
    assert outcome.kind == DONE
    assert "failed" in outcome.encoding["probe.h264"] and outcome.encoding["crf.h264"] == 23
    assert any("per-title probe failed, fixed CRF 23 kept" in r.getMessage() for r in caplog.records)
    assert crfs_used(out / "270p") == {23.0}
    assert not (out / "probe").exists()
