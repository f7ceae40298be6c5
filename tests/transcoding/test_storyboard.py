"""Trick-play storyboard: sprite sheets and a WebVTT whose cues cover the video, each tile in its sheet."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from tests.media import jpeg_size, make_clip
from tests.transcoding.helpers import upload, wait_for_status
from transcode.storyboard import MAX_TILES, Storyboard

TIME = r"(\d\d):(\d\d):(\d\d)\.(\d{3})"
CUE = re.compile(rf"{TIME} --> {TIME}\n(\S+)#xywh=(\d+),(\d+),(\d+),(\d+)")


def seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def cues(vtt: str) -> list[tuple[float, float, str, tuple[int, int, int, int]]]:
    assert vtt.startswith("WEBVTT\n")
    found = []
    for match in CUE.finditer(vtt):
        groups = match.groups()
        rect = tuple(int(v) for v in groups[9:13])
        found.append((seconds(*groups[0:4]), seconds(*groups[4:8]), groups[8], rect))
    return found


def assert_covers(found, duration: float) -> None:
    assert found[0][0] == 0.0
    for (_, end, _, _), (start, _, _, _) in itertools.pairwise(found):
        assert start == end  # no gap, no overlap
    assert abs(found[-1][1] - duration) < 0.001


@pytest.mark.parametrize(("duration", "sheets"), [(3.0, 1), (125.5, 2), (3600.0, 2), (7 * 3600 + 0.25, 2)])
def test_the_cues_cover_the_whole_duration_with_at_most_about_200_tiles_inside_their_sheets(duration, sheets):
    board = Storyboard.plan(duration, 1920, 1080)
    found = cues(board.vtt())
    assert_covers(found, duration)
    assert len(found) <= MAX_TILES and board.sheets == sheets
    sheet_size = (board.columns * board.width, board.rows * board.height)
    names = {name for _, _, name, _ in found}
    numbered = {f"storyboard_{n}.jpg" for n in range(1, sheets + 1)}
    assert names == ({"storyboard.jpg"} if sheets == 1 else numbered)
    for _, _, _, (x, y, w, h) in found:
        assert (w, h) == (160, 90)
        assert x + w <= sheet_size[0] and y + h <= sheet_size[1]


@pytest.mark.slow
async def test_a_ready_video_has_a_storyboard_served_under_its_grant(
    api, staff_token, user_token, tmp_path, db, settings
):
    clip = make_clip(tmp_path / "five.mp4", "640x360", seconds=5.0)
    video_id = await upload(api, staff_token, clip)
    doc = await wait_for_status(db, video_id, "ready")
    folder = (Path(settings.media.root) / doc["hls_path"]).parent
    video = (await api.get(f"/api/videos/{video_id}/", token=user_token)).data
    assert video["storyboard_url"] == video["hls_url"].replace("master.m3u8", "storyboard.vtt")
    reply = await api.get(video["storyboard_url"])
    assert reply.code == 200
    found = cues(reply.body.decode())
    assert len(found) == 5
    assert_covers(found, 5.0)
    sheet = folder / "storyboard.jpg"
    width, height = jpeg_size(sheet.read_bytes())
    for _, _, name, (x, y, w, h) in found:
        assert name == "storyboard.jpg"
        assert x + w <= width and y + h <= height
    image = await api.get(video["storyboard_url"].replace("storyboard.vtt", "storyboard.jpg"))
    assert image.code == 200 and image.body[:3] == b"\xff\xd8\xff"


@pytest.mark.slow
async def test_with_the_storyboard_switched_off_a_video_is_ready_without_one(
    api, staff_token, user_token, clips, db, settings
):
    settings.transcode.storyboard = False
    video_id = await upload(api, staff_token, clips["small"])
    doc = await wait_for_status(db, video_id, "ready")
    folder = (Path(settings.media.root) / doc["hls_path"]).parent
    assert not list(folder.glob("storyboard*"))
    video = (await api.get(f"/api/videos/{video_id}/", token=user_token)).data
    assert video["storyboard_url"] is None and video["hls_url"]
