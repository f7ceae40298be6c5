"""Reading subtitle files: what a staff upload becomes, and what it is refused for (no server, no FFmpeg)."""

from __future__ import annotations

import pytest

from services.tracks import language_tag
from transcode.subtitles import (
    Chapter,
    Cue,
    SubtitleError,
    chapters_vtt,
    parse,
    segment,
)

SRT = b"1\r\n00:00:01,000 --> 00:00:02,500\r\nHello\r\n\r\n2\r\n00:00:03,000 --> 00:00:04,000\r\nWorld\r\n"


def test_an_srt_file_becomes_cues_in_seconds():
    assert parse(SRT, None) == [Cue(1.0, 2.5, "Hello"), Cue(3.0, 4.0, "World")]


def test_a_webvtt_file_with_a_bom_keeps_its_allowed_tags():
    vtt = "\ufeffWEBVTT\n\n00:01.000 --> 00:02.000 align:start\n<v Bob>Hi</v> <i>there</i>\n".encode()
    assert parse(vtt, None) == [Cue(1.0, 2.0, "<v Bob>Hi</v> <i>there</i>")]


def test_a_windows_1252_srt_is_read():
    data = "1\n00:00:01,000 --> 00:00:02,000\nCafé crème\n".encode("cp1252")
    assert parse(data, None)[0].text == "Café crème"


def test_markup_webvtt_does_not_allow_is_dropped_and_the_rest_escaped():
    data = (
        b"1\n00:00:01,000 --> 00:00:02,000\n"
        b'<script>alert(1)</script><img src=x onerror=alert(2)> <font color="red">red</font> a<b & c\n'
    )
    [cue] = parse(data, None)
    assert cue.text == "alert(1) red a&lt;b &amp; c"


def test_cues_past_the_videos_end_are_cut():
    assert parse(SRT, 3.5) == [Cue(1.0, 2.5, "Hello"), Cue(3.0, 3.5, "World")]
    assert parse(SRT, 2.0) == [Cue(1.0, 2.0, "Hello")]


@pytest.mark.parametrize(
    ("data", "sentence"),
    [
        (b"1\n00:00:01,000 -> 00:00:02,000\nx\n", "Line 2: expected the timing of cue 1."),
        (b"1\n00:00:01,000 --> 00:00:02,000\nx\n\n2\n00:00:0x,000 --> 00:00:04,000\ny\n", "Line 6:"),
        (b"WEBVTT\n\n00:01.000 --> 00:00.500\nx\n", "Line 3: the cue ends before it starts."),
        (b"WEBVT\n\n00:01.000 --> 00:02.000\nx\n", "Line 1: expected a cue number or a cue timing."),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "the file holds binary data"),
        (b"", "no cue"),
        (b"1\n00:00:11,000 --> 00:00:12,000\nlate\n", "no cue within the video's duration"),
    ],
)
def test_a_broken_file_is_refused_naming_its_line(data, sentence):
    with pytest.raises(SubtitleError, match=sentence.replace("(", r"\(")):
        parse(data, 10.0)


def test_segments_follow_the_video_segments_and_map_local_zero_to_the_first_fragment():
    cues = [Cue(0.5, 0.9, "a"), Cue(1.9, 2.1, "across"), Cue(2.5, 3.2, "last")]
    segments, playlist = segment(cues, [1.0, 1.0, 1.2], 1234)
    assert all(s.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:1234,LOCAL:00:00:00.000\n") for s in segments)
    assert "a" in segments[0] and "across" not in segments[0]
    assert "across" in segments[1] and "across" in segments[2] and "last" in segments[2]
    assert "#EXTINF:1.200000,\nseg_00003.vtt" in playlist and playlist.endswith("#EXT-X-ENDLIST\n")


def test_chapters_run_to_the_next_one_and_the_last_to_the_end():
    text = chapters_vtt([Chapter(0, "Intro"), Chapter(2.5, "<b>Part</b> two")], 4.0)
    assert "00:00:00.000 --> 00:00:02.500\nIntro" in text
    assert "00:00:02.500 --> 00:00:04.000\n&lt;b&gt;Part&lt;/b&gt; two" in text


@pytest.mark.parametrize(
    ("given", "tag"), [("en", "en"), ("PT-br", "pt-BR"), ("zh-hant-tw", "zh-Hant-TW"), ("es-419", "es-419")]
)
def test_language_tags_are_kept_in_their_usual_case(given, tag):
    assert language_tag(given) == tag


@pytest.mark.parametrize("given", ["", "e", "english!", "en_US", "en-", "x" * 40, "de-CH-1901-" + "a" * 30])
def test_what_is_not_a_language_tag_is_refused(given):
    with pytest.raises(ValueError, match="BCP 47"):
        language_tag(given)


def test_cues_repeated_across_too_many_segments_are_refused():
    long_cues = [Cue(0.0, 100.0, "x" * 1000) for _ in range(400)]
    with pytest.raises(SubtitleError, match="overlap so much"):
        segment(long_cues, [1.0] * 100, 0)


def test_a_file_of_too_many_cues_is_refused():
    data = "".join(f"{n}\n00:00:01,000 --> 00:00:02,000\nx\n\n" for n in range(1, 10_002)).encode()
    with pytest.raises(SubtitleError, match="Line 40002: more than 10000 cues"):
        parse(data, None)
