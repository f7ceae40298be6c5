"""bench/quality.py's pure helpers, so the figures it prints can be trusted: the BD-rate, the VMAF log
parser, the rung caps (against the pipeline's own plan_rungs), the interpolations. No FFmpeg runs."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import quality

from transcode.ladder import DEFAULT_LADDER, EncodeSettings
from transcode.ladder import plan_rungs as pipeline_plan_rungs
from transcode.probe import MediaInfo

RATES = [500.0, 1000.0, 2000.0, 4000.0]
VMAFS = [80.0, 86.0, 91.0, 95.0]


def test_bd_rate_of_a_curve_against_itself_is_zero() -> None:
    assert quality.bd_rate(RATES, VMAFS, RATES, VMAFS) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("factor", [0.5, 0.65, 1.0, 2.0])
def test_bd_rate_of_a_constant_rate_factor_is_that_factor(factor: float) -> None:
    """The same quality at `factor` times the bits everywhere: the log-rate curves differ by a constant."""
    scaled = [r * factor for r in RATES]
    assert quality.bd_rate(RATES, VMAFS, scaled, VMAFS) == pytest.approx((factor - 1) * 100, abs=1e-6)


def test_bd_rate_integrates_over_the_shared_range_only() -> None:
    """log10(rate) linear in quality: ref = q/20, test = q/20 - 0.1 + (q - 90)/100 on q in [80, 100]
    and [85, 95]. Over the overlap [85, 95] the mean difference is -0.1 + mean(q - 90)/100 = -0.1,
    so BD-rate = 10^-0.1 - 1 = -20.57 %, whatever lies outside the overlap."""
    q_ref = [80.0, 85.0, 90.0, 95.0, 100.0]
    q_test = [85.0, 88.0, 92.0, 95.0]
    ref = [10 ** (q / 20) for q in q_ref]
    test = [10 ** (q / 20 - 0.1 + (q - 90) / 100) for q in q_test]
    assert quality.bd_rate(ref, q_ref, test, q_test) == pytest.approx((10**-0.1 - 1) * 100, abs=1e-6)


def test_bd_rate_fits_a_cubic_exactly() -> None:
    """A cubic log-rate curve through 4 points is reproduced exactly: test = ref + a cubic offset whose
    mean over [-1, 1] (after centring) is known: offset(x) = 0.05 + 0.2x^3 has mean 0.05."""
    q = [90.0, 91.0, 93.0, 94.0]  # overlap [90, 94]: centre 92, half-width 2
    ref = [10 ** (2 + 0.3 * ((v - 92) / 2) ** 2) for v in q]
    test = [r * 10 ** (0.05 + 0.2 * ((v - 92) / 2) ** 3) for r, v in zip(ref, q, strict=True)]
    assert quality.bd_rate(ref, q, test, q) == pytest.approx((10**0.05 - 1) * 100, abs=1e-6)


def test_bd_rate_is_none_without_a_shared_quality_range() -> None:
    assert quality.bd_rate(RATES, [99.8, 99.9, 99.95, 99.97], RATES, [99.9, 99.95, 99.96, 99.98]) is None
    assert quality.bd_rate(RATES, [60, 70, 80, 85], RATES, [90, 93, 96, 98]) is None


def test_polyfit_matches_a_known_polynomial() -> None:
    xs = [-1.0, -0.3, 0.2, 0.7, 1.0]
    ys = [1 + 2 * x - 3 * x**2 + 0.5 * x**3 for x in xs]
    assert quality.polyfit(xs, ys, 3) == pytest.approx([1, 2, -3, 0.5], abs=1e-9)


def test_vmaf_log_parser_reads_the_pooled_mean() -> None:
    log = {
        "version": "86da14d",
        "fps": 41.2,
        "frames": [{"frameNum": 0, "metrics": {"vmaf": 97.1}}, {"frameNum": 3, "metrics": {"vmaf": 95.0}}],
        "pooled_metrics": {"vmaf": {"min": 95.0, "max": 97.1, "mean": 96.05, "harmonic_mean": 96.04}},
        "aggregate_metrics": {},
    }
    assert quality.parse_vmaf_log(json.dumps(log)) == 96.05


def test_vmaf_log_parser_refuses_a_log_without_vmaf() -> None:
    with pytest.raises(KeyError):
        quality.parse_vmaf_log(json.dumps({"pooled_metrics": {"psnr_y": {"mean": 40.0}}}))


LADDER = [(height, kbps) for height, kbps, _ in DEFAULT_LADDER]


def test_rung_caps_of_a_1080p_source() -> None:
    rungs = quality.plan_rungs(1920, 1080, 50_000, LADDER)
    assert [(r.height, r.width, r.max_kbps) for r in rungs] == [
        (120, 214, 250),
        (360, 640, 900),
        (720, 1280, 3000),
        (1080, 1920, 6000),
    ]


def test_rung_caps_never_above_the_source_nor_its_bitrate() -> None:
    rungs = quality.plan_rungs(1280, 720, 1000, LADDER)  # 1.3 x 1000 = 1300 kbit/s ceiling
    assert [(r.height, r.max_kbps) for r in rungs] == [(120, 250), (360, 900), (720, 1300)]
    assert [r.height for r in quality.plan_rungs(160, 90, 0, LADDER)] == [120]  # the smallest always


@pytest.mark.parametrize(
    ("width", "height", "kbps"),
    [
        (1920, 1080, 8000),
        (1920, 1080, 2000),
        (1280, 720, 0),
        (854, 480, 700),
        (1440, 1080, 300),
        (320, 240, 0),
    ],
)
def test_rung_caps_match_the_pipeline(width: int, height: int, kbps: int) -> None:
    """The bench's copy of the caps agrees with transcode/ladder.py's plan_rungs (if the pipeline's
    rule changes, this fails and the bench must follow)."""
    info = MediaInfo(
        duration=10, width=width, height=height, rotation=0, fps=30, has_audio=False, video_codec="h264",
        video_kbps=kbps,
    )  # fmt: skip
    pipeline = pipeline_plan_rungs(info, EncodeSettings())
    bench = quality.plan_rungs(width, height, kbps, LADDER)
    assert [(r.height, r.width, r.max_kbps) for r in bench] == [
        (r.height, r.width, r.max_kbps) for r in pipeline
    ]


def test_rate_at_quality_interpolates_log_rate() -> None:
    points = [(1000.0, 90.0), (4000.0, 96.0)]
    rate, bound = quality.rate_at_quality(points, 93.0)
    assert (rate, bound) == (pytest.approx(2000.0), "")  # halfway in quality: the geometric mean
    assert quality.rate_at_quality(points, 85.0) == (1000.0, "≤")
    assert quality.rate_at_quality(points, 97.0) == (4000.0, ">")


def test_crf_for_target_interpolates_and_clamps() -> None:
    points = [(19, 98.0), (23, 95.0), (27, 89.0)]
    assert quality.crf_for_target(points, 93.0, 16, 30) == pytest.approx(23 + 4 * 2 / 6)
    assert quality.crf_for_target(points, 99.5, 16, 30) == pytest.approx(17.0)  # extrapolated low end
    assert quality.crf_for_target(points, 50.0, 16, 30) == 30  # clamped
    saturated = [(30, 99.9), (40, 99.9), (50, 99.9)]
    assert quality.crf_for_target(saturated, 93.0, 20, 55) == 55  # above target everywhere: cheapest


def test_even_widths() -> None:
    assert [quality.even(v) for v in (213.33, 639.9, 1.0, 427.0)] == [214, 640, 2, 428]
    assert math.isclose(quality.MAX_INFLATION, 1.3)
