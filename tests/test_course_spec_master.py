"""The one-rung master a course-spec player gets for a CMAF rung: its picture and the audio group."""

from __future__ import annotations

from services.media.media import one_rung_master

BASE = "https://api.example.com/api/stream/GRANT"
CMAF = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="Audio",DEFAULT=YES,AUTOSELECT=YES,URI="audio/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=214x120,CODECS="avc1.64000c,mp4a.40.2",AUDIO="audio"
120p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2",AUDIO="audio"
360p/index.m3u8
"""
TS = """#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=214x120,CODECS="avc1.64000c,mp4a.40.2"
120p/index.m3u8
"""


def test_a_cmaf_rung_gets_one_variant_and_the_audio_group_under_the_grant():
    text = one_rung_master(CMAF, "360p/index.m3u8", BASE)
    assert text is not None
    lines = text.splitlines()
    assert lines[:3] == ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    assert f'URI="{BASE}/audio/index.m3u8"' in lines[3]
    assert lines[4].startswith("#EXT-X-STREAM-INF:BANDWIDTH=900000") and 'AUDIO="audio"' in lines[4]
    assert lines[5:] == [f"{BASE}/360p/index.m3u8"]


def test_a_ladder_whose_rungs_carry_their_sound_keeps_its_rung_playlist():
    assert one_rung_master(TS, "120p/index.m3u8", BASE) is None


def test_a_rung_the_master_does_not_name_gets_nothing_made_up():
    assert one_rung_master(CMAF, "720p/index.m3u8", BASE) is None
