"""core/edge.py: windows, tokens and playlist rewriting (nginx and S3 are exercised in their own tests)."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

from core.edge import NginxEdge, S3Edge, join_inside, nginx_token, rewrite_playlist, window

FOLDER = "videos/65a000000000000000000001/hls-2-abc123"
MASTER = (
    "#EXTM3U\n#EXT-X-VERSION:3\n"
    "#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\n360p/index.m3u8\n"
    "#EXT-X-STREAM-INF:BANDWIDTH=2800000,RESOLUTION=1280x720\n720p/index.m3u8\n"
)


def test_a_window_starts_on_its_multiple_and_its_urls_expire_two_windows_later():
    assert window(1_000_599, 600) == (1_000_200, 1_001_400)
    assert window(1_000_800, 600) == (1_000_800, 1_002_000)


def test_the_master_playlist_lists_absolute_edge_urls_and_keeps_its_tags():
    edge = NginxEdge("https://cdn.example.com/media/", "s", 600)
    rewritten = edge.master(MASTER, FOLDER, now=1_000_000).splitlines()
    expires = window(1_000_000, 600)[1]
    token = nginx_token("s", expires, FOLDER)
    assert rewritten[:3] == [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360",
    ]
    assert rewritten[3] == f"https://cdn.example.com/media/{token}/{expires}/{FOLDER}/360p/index.m3u8"
    assert rewritten[5].endswith(f"/{FOLDER}/720p/index.m3u8")


def test_uri_attributes_are_rewritten_too():
    text = '#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:4,\nseg_00000.m4s\n'
    assert rewrite_playlist(text, lambda uri: "X/" + uri) == (
        '#EXTM3U\n#EXT-X-MAP:URI="X/init.mp4"\n#EXTINF:4,\nX/seg_00000.m4s\n'
    )


def test_nothing_outside_the_ladder_folder_can_be_signed():
    edge = NginxEdge("/media", "s", 600)
    for name in ("../hls-other/master.m3u8", "/etc/passwd", "http://evil/x.ts", ".."):
        with pytest.raises(ValueError):
            edge.url(FOLDER, name)
    for folder in (
        "videos/../x/hls",
        "videos/65a000000000000000000001",
        "other/65a000000000000000000001/hls",
    ):
        with pytest.raises(ValueError):
            edge.url(folder, "master.m3u8")
    assert join_inside("videos/a/hls/360p", "../../other/seg.ts") is None
    assert join_inside("videos/a/hls/360p", "seg_00001.ts") == "videos/a/hls/360p/seg_00001.ts"


def test_the_python_check_agrees_with_the_token_and_refuses_other_folders_and_the_expired():
    edge = NginxEdge("/media", "s", 600)
    _, expires = window(1_000_000, 600)
    token = nginx_token("s", expires, FOLDER)
    assert edge.check(token, expires, FOLDER, now=1_000_000)
    assert not edge.check(token, expires, FOLDER.replace("0001", "0002"), now=1_000_000)
    assert not edge.check(token, expires, FOLDER, now=expires + 1)
    assert not edge.check(token, expires + 600, FOLDER, now=1_000_000)


MPD = (
    '<?xml version="1.0" encoding="utf-8"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static">\n'
    '  <Period id="0" start="PT0S">\n    <AdaptationSet id="0" contentType="video">\n'
    '      <Representation id="720p" codecs="avc1.64001f" bandwidth="1"><SegmentTemplate timescale="15360" '
    'presentationTimeOffset="1024" initialization="720p/init.mp4" media="720p/seg_$Number%05d$.m4s" '
    'startNumber="1"><SegmentTimeline><S t="1024" d="61440" r="1"/><S t="123904" d="30720"/>'
    "</SegmentTimeline></SegmentTemplate></Representation>\n    </AdaptationSet>\n  </Period>\n</MPD>\n"
)


class PresigningStore:
    """What S3Edge asks of the store: a presigned GET (its query has an '&', as real ones do)."""

    def presign(self, key: str, expires_s: int, signed_at) -> str:
        return f"https://bucket.example.com/{key}?X-Amz-Expires={expires_s}&X-Amz-Signature=sig"


def test_the_dash_manifest_gets_the_edge_folder_as_its_base_url_for_nginx():
    edge = NginxEdge("https://cdn.example.com/media/", "s", 600)
    sent = edge.manifest(MPD, FOLDER, now=1_000_000)
    base = edge.folder_url(FOLDER, now=1_000_000)
    assert f"  <BaseURL>{base}</BaseURL>\n  <Period" in sent
    assert 'initialization="720p/init.mp4"' in sent  # relative: resolved against the BaseURL
    ElementTree.fromstring(sent.split("\n", 1)[1])


def test_the_dash_manifest_lists_every_segment_presigned_for_s3():
    edge = S3Edge(PresigningStore(), "s", 600)
    sent = edge.manifest(MPD, FOLDER, now=1_000_000)
    root = ElementTree.fromstring(sent.split("\n", 1)[1])
    ns = {"d": "urn:mpeg:dash:schema:mpd:2011"}
    segments = root.find(".//d:SegmentList", ns)
    assert segments is not None and root.find(".//d:SegmentTemplate", ns) is None
    assert segments.get("presentationTimeOffset") == "1024" and segments.get("timescale") == "15360"
    init = segments.find("d:Initialization", ns).get("sourceURL")
    assert init == f"https://bucket.example.com/{FOLDER}/720p/init.mp4?X-Amz-Expires=1200&X-Amz-Signature=sig"
    urls = [s.get("media") for s in segments.findall("d:SegmentURL", ns)]
    assert [u.split("?")[0].rsplit("/", 1)[1] for u in urls] == [
        "seg_00001.m4s",
        "seg_00002.m4s",
        "seg_00003.m4s",
    ]
    assert len(segments.findall("d:SegmentTimeline/d:S", ns)) == 2
