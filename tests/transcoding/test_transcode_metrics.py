"""After a real transcode, /metrics shows how long it took and how fast it ran."""

from __future__ import annotations

import pytest

from tests.test_metrics import TOKEN, value
from tests.transcoding.helpers import upload, wait_for_status


@pytest.fixture
def settings_overrides(settings_overrides):
    return {**settings_overrides, "metrics": {"token": TOKEN}}


async def test_a_scrape_after_a_transcode_shows_its_duration_and_speed(api, staff_token, clips, db):
    video_id = await upload(api, staff_token, clips["small"])
    await wait_for_status(db, video_id, "ready")
    reply = await api.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    text = reply.body.decode()
    assert value(text, "videoflix_transcode_duration_seconds_count") == 1
    assert value(text, "videoflix_transcode_duration_seconds_sum") > 0
    assert value(text, "videoflix_transcode_speed_ratio_count") == 1
    assert value(text, "videoflix_job_failures_total", type="transcode") is None  # none failed
