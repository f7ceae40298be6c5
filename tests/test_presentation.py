"""The presentation record: what a ladder's two manifests list, and the manifests written from it."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from transcode.cmaf import Rendition, Track
from transcode.presentation import AudioTrack, Presentation, TextTrack

NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}


def video(name: str, codecs: str, height: int, peak: int, count: int = 3) -> Rendition:
    track = Track("vide", 15360, codecs, height * 16 // 9, height, presentation_offset=1024)
    segments = tuple((n, (n - 1) * 61440, 61440) for n in range(1, count + 1))
    return Rendition(name, track, segments, peak, peak * 3 // 4)


def audio(name: str = "audio") -> Rendition:
    track = Track("soun", 48000, "mp4a.40.2", channels=2, sample_rate=48000)
    segments = ((1, 0, 192000), (2, 192000, 192000), (3, 384000, 96000))
    return Rendition(name, track, segments, 130_000, 128_000)


def ladder() -> Presentation:
    return Presentation(
        fps=25.0,
        segment_s=4,
        videos=(video("360p", "avc1.64001e", 360, 900_000), video("720p", "avc1.64001f", 720, 3_000_000)),
        audio=(AudioTrack(audio(), "en", "Original", default=True),),
    )


def test_the_record_reads_back_as_it_was_written():
    presentation = ladder().with_text(TextTrack("subs-0a1b2c", "fr", "Français", default=True))
    again = Presentation.from_json(presentation.to_json())
    assert again == presentation
    assert again.master_text() == presentation.master_text()


def test_a_record_that_is_not_one_is_refused_with_a_value_error():
    for text in ["", "[]", '{"fps": "x"}', '{"fps": 25}', '{"fps": 25, "segment_s": 4, "videos": [1]}']:
        with pytest.raises(ValueError):
            Presentation.from_json(text)


def test_the_master_names_the_audio_group_in_every_variant_and_ends_with_an_audio_only_one():
    lines = ladder().master_text().splitlines()
    variants = [line for line in lines if line.startswith("#EXT-X-STREAM-INF:")]
    assert len(variants) == 3
    assert all('AUDIO="aud"' in line for line in variants)
    assert 'CODECS="avc1.64001f,mp4a.40.2"' in variants[1] and "RESOLUTION=1280x720" in variants[1]
    assert 'CODECS="mp4a.40.2"' in variants[-1] and "RESOLUTION" not in variants[-1]
    assert lines[-1] == "audio/index.m3u8"
    assert "BANDWIDTH=130000" in variants[-1]
    assert "BANDWIDTH=3130000" in variants[1]  # the picture's peak plus the sound's


def test_subtitles_are_a_group_every_variant_names():
    presentation = ladder().with_text(TextTrack("subs-0a1b2c", "de", 'Deutsch "SDH"'))
    master = presentation.master_text()
    media = [line for line in master.splitlines() if "TYPE=SUBTITLES" in line]
    assert media == [
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",LANGUAGE="de",NAME="Deutsch  SDH ",DEFAULT=NO,'
        'AUTOSELECT=YES,FORCED=NO,URI="subs-0a1b2c/index.m3u8"'
    ]
    variants = [line for line in master.splitlines() if line.startswith("#EXT-X-STREAM-INF:")]
    assert all('SUBTITLES="subs"' in line for line in variants)


def test_the_same_language_again_replaces_the_subtitles_and_one_default_remains():
    presentation = (
        ladder()
        .with_text(TextTrack("subs-000001", "en", "English", default=True))
        .with_text(TextTrack("subs-000002", "fr", "Français"))
        .with_text(TextTrack("subs-000003", "en", "English (new)"))
    )
    assert [(t.folder, t.language) for t in presentation.text] == [
        ("subs-000002", "fr"),
        ("subs-000003", "en"),
    ]
    assert presentation.without_text("subs-000002").text == (TextTrack("subs-000003", "en", "English (new)"),)


def test_an_added_default_audio_language_takes_the_default_from_the_original():
    presentation = ladder().with_audio(AudioTrack(audio("audio-00aa11"), "de", "Deutsch", default=True))
    defaults = [(t.name, t.default) for t in presentation.audio]
    assert defaults == [("audio", False), ("audio-00aa11", True)]
    master = presentation.master_text()
    assert 'LANGUAGE="de",NAME="Deutsch",DEFAULT=YES' in master
    assert 'LANGUAGE="en",NAME="Original",DEFAULT=NO' in master
    # taking the default away makes the first one left the default again
    assert [t.default for t in presentation.without_audio("audio-00aa11").audio] == [True]


def test_av1_rungs_are_listed_after_h264_and_get_their_own_adaptation_set():
    presentation = ladder().with_videos(
        [video("av1-360p", "av01.0.04M.08", 360, 500_000), video("av1-720p", "av01.0.05M.08", 720, 1_500_000)]
    )
    assert [r.name for r in presentation.videos] == ["360p", "720p", "av1-360p", "av1-720p"]
    assert presentation.codecs == ["avc1", "av01"]
    root = ET.fromstring(presentation.mpd_text())
    sets = root.findall(".//d:AdaptationSet", NS)
    kinds = [
        (s.get("contentType"), [r.get("codecs") for r in s.findall("d:Representation", NS)]) for s in sets
    ]
    assert kinds == [
        ("video", ["avc1.64001e", "avc1.64001f"]),
        ("video", ["av01.0.04M.08", "av01.0.05M.08"]),
        ("audio", ["mp4a.40.2"]),
    ]
    assert [s.get("id") for s in sets] == ["0", "1", "2"]
    assert presentation.without_videos("av01").videos == ladder().videos


def test_the_mpd_lists_audio_languages_and_subtitles_as_their_own_sets():
    presentation = (
        ladder()
        .with_audio(AudioTrack(audio("audio-00aa11"), "de", "Deutsch"))
        .with_text(TextTrack("subs-0a1b2c", "fr", "Français <CC>"))
    )
    root = ET.fromstring(presentation.mpd_text())
    sets = root.findall(".//d:AdaptationSet", NS)
    audio_sets = [s for s in sets if s.get("contentType") == "audio"]
    assert [(s.get("lang"), s.find("d:Role", NS).get("value")) for s in audio_sets] == [
        ("en", "main"),
        ("de", "alternate"),
    ]
    text = [s for s in sets if s.get("contentType") == "text"]
    assert len(text) == 1 and text[0].get("mimeType") == "text/vtt" and text[0].get("lang") == "fr"
    assert text[0].find("d:Label", NS).text == "Français <CC>"
    assert text[0].find("d:Representation/d:BaseURL", NS).text == "subs-0a1b2c/subtitles.vtt"


def test_a_segment_list_is_stored_as_runs():
    long = Presentation(25.0, 4, videos=(video("720p", "avc1.64001f", 720, 1, count=1800),))
    record = long.to_json()
    assert len(record) < 1000
    assert Presentation.from_json(record).videos[0].segments == long.videos[0].segments
