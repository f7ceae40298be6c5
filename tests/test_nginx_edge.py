"""nginx's secure_link, with the configuration in deploy/nginx, against URLs that core/edge.py makes."""

from __future__ import annotations

import http.client
import os
import re
import time
from pathlib import Path
from urllib.parse import urljoin

import pytest

from core.edge import NginxEdge, nginx_token, window
from tests.nginx import NGINX, Nginx, free_port

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx)")

SECRET = "edge-secret-for-tests"
VIDEO_A = "videos/65a000000000000000000001/hls-1-abc123"
VIDEO_B = "videos/65b000000000000000000002/hls-1-def456"
CMAF_PLAYLIST = b'#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:4.0,\nseg_00001.m4s\n#EXT-X-ENDLIST\n'


def make_ladder(media: Path, folder: str) -> dict[str, bytes]:
    files = {
        "master.m3u8": b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\n360p/index.m3u8\n",
        "360p/index.m3u8": b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\nseg_00000.ts\n#EXT-X-ENDLIST\n",
        "360p/seg_00000.ts": os.urandom(200_000),
        "thumbnail.jpg": os.urandom(5_000),
        # a CMAF ladder's renditions: init and media segments, the audio beside the rungs
        "720p/index.m3u8": CMAF_PLAYLIST,
        "720p/init.mp4": os.urandom(800),
        "720p/seg_00001.m4s": os.urandom(100_000),
        "audio/index.m3u8": CMAF_PLAYLIST,
        "audio/init.mp4": os.urandom(600),
        "audio/seg_00001.m4s": os.urandom(60_000),
    }
    for name, body in files.items():
        path = media / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return files


@pytest.fixture(scope="module")
def edge_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("nginx-edge")
    media = root / "media"
    ladders = {VIDEO_A: make_ladder(media, VIDEO_A), VIDEO_B: make_ladder(media, VIDEO_B)}
    port = free_port()
    values = {
        "EDGE_SECRET": SECRET,
        "MEDIA_ROOT": str(media),
        "API_UPSTREAM": f"127.0.0.1:{free_port()}",  # nothing listens: these tests never reach the API
        "NGINX_LISTEN": f"127.0.0.1:{port}",
        "NGINX_CACHE_DIR": str(root / "cache"),
    }
    with Nginx(root / "nginx", values, port):
        yield port, ladders


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


def edge() -> NginxEdge:
    return NginxEdge("/media", SECRET, 600)


def test_a_segment_url_from_core_edge_is_served_from_disk_by_nginx(edge_server):
    port, ladders = edge_server
    status, headers, body = get(port, edge().url(VIDEO_A, "360p/seg_00000.ts"))
    assert status == 200
    assert body == ladders[VIDEO_A]["360p/seg_00000.ts"]
    assert headers["content-type"] == "video/mp2t"
    assert "immutable" in headers["cache-control"]


def test_nginx_answers_a_range_of_a_segment(edge_server):
    port, ladders = edge_server
    status, headers, body = get(port, edge().url(VIDEO_A, "360p/seg_00000.ts"), {"Range": "bytes=100-1099"})
    assert status == 206
    assert body == ladders[VIDEO_A]["360p/seg_00000.ts"][100:1100]
    assert headers["content-range"] == "bytes 100-1099/200000"


def test_relative_uris_in_a_variant_playlist_resolve_under_the_same_token(edge_server):
    port, ladders = edge_server
    master_url = edge().url(VIDEO_A, "master.m3u8")
    status, _, master = get(port, master_url)
    assert status == 200
    variant_url = urljoin(master_url, master.decode().splitlines()[-1])
    status, _, variant = get(port, variant_url)
    assert status == 200 and variant == ladders[VIDEO_A]["360p/index.m3u8"]
    status, _, segment = get(port, urljoin(variant_url, "seg_00000.ts"))
    assert status == 200 and segment == ladders[VIDEO_A]["360p/seg_00000.ts"]


def test_every_viewer_gets_the_same_url_within_a_window():
    start, expires = window(time.time(), 600)
    first = edge().url(VIDEO_A, "360p/seg_00000.ts", now=start + 1)
    last = edge().url(VIDEO_A, "360p/seg_00000.ts", now=start + 599)
    assert first == last
    assert f"/{expires}/" in first and expires - time.time() > 600
    assert edge().url(VIDEO_A, "360p/seg_00000.ts", now=start + 600) != first


def test_a_forged_token_is_refused_with_403(edge_server):
    port, _ = edge_server
    good = edge().url(VIDEO_A, "360p/seg_00000.ts")
    token = good.split("/")[2]
    forged = good.replace(token, ("A" if token[0] != "A" else "B") + token[1:])
    assert get(port, forged)[0] == 403
    wrong_secret = NginxEdge("/media", "not-the-secret", 600).url(VIDEO_A, "360p/seg_00000.ts")
    assert get(port, wrong_secret)[0] == 403


def test_an_expired_token_is_refused_with_403(edge_server):
    port, _ = edge_server
    expires = int(time.time()) - 5
    token = nginx_token(SECRET, expires, VIDEO_A)
    assert edge().check(token, expires, VIDEO_A) is False
    assert get(port, f"/media/{token}/{expires}/{VIDEO_A}/360p/seg_00000.ts")[0] == 403


def test_a_token_for_video_a_opens_nothing_of_video_b(edge_server):
    port, _ = edge_server
    url_a = edge().url(VIDEO_A, "360p/seg_00000.ts")
    for name in ("360p/seg_00000.ts", "360p/index.m3u8", "master.m3u8", "thumbnail.jpg"):
        assert get(port, url_a.replace(VIDEO_A, VIDEO_B).replace("360p/seg_00000.ts", name))[0] == 403
    assert get(port, edge().url(VIDEO_B, "thumbnail.jpg"))[0] == 200


def test_cmaf_init_and_media_segments_and_the_audio_resolve_under_the_same_token(edge_server):
    port, ladders = edge_server
    for rendition in ("720p", "audio"):
        variant_url = edge().url(VIDEO_A, f"{rendition}/index.m3u8")
        status, _, playlist = get(port, variant_url)
        assert status == 200 and b'#EXT-X-MAP:URI="init.mp4"' in playlist
        status, headers, init = get(port, urljoin(variant_url, "init.mp4"))
        assert status == 200 and init == ladders[VIDEO_A][f"{rendition}/init.mp4"]
        assert headers["content-type"] == "video/mp4" and "immutable" in headers["cache-control"]
        status, headers, segment = get(port, urljoin(variant_url, "seg_00001.m4s"))
        assert status == 200 and segment == ladders[VIDEO_A][f"{rendition}/seg_00001.m4s"]
        assert headers["content-type"] == "video/iso.segment" and "immutable" in headers["cache-control"]


def test_the_dash_manifest_the_api_sends_resolves_its_segments_at_nginx(edge_server):
    port, ladders = edge_server
    mpd = (
        '<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static">\n'
        '  <Period id="0">\n    <AdaptationSet><Representation id="720p"><SegmentTemplate timescale="90000" '
        'initialization="720p/init.mp4" media="720p/seg_$Number%05d$.m4s" startNumber="1">'
        "</SegmentTemplate></Representation></AdaptationSet>\n  </Period>\n</MPD>\n"
    )
    sent = edge().manifest(mpd, VIDEO_A)
    base = re.search(r"<BaseURL>([^<]+)</BaseURL>\n  <Period", sent).group(1)
    assert base == edge().folder_url(VIDEO_A)
    for name in ("720p/init.mp4", "720p/seg_00001.m4s", "audio/seg_00001.m4s"):
        status, _, body = get(port, urljoin(base, name))
        assert status == 200 and body == ladders[VIDEO_A][name]


def test_only_the_names_of_a_ladder_can_be_asked_for(edge_server):
    port, _ = edge_server
    base = edge().folder_url(VIDEO_A)
    for path in (
        base + "../hls-other/master.m3u8",
        base + "%2e%2e/x.ts",
        "/media/" + VIDEO_A + "/master.m3u8",
    ):
        assert get(port, path)[0] in (403, 404)
