"""Audio tracks staff add to a ready video, over the real HTTP server with the real FFmpeg: encoded once
onto the ladder's timeline, listed by the master and the MPD, the picture untouched; and every refusal."""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path

import pytest
from bson import ObjectId

from tests.media import make_clip, multipart, run_ffmpeg
from tests.transcoding.helpers import upload, wait_for, wait_for_status
from tests.transcoding.test_loudness import loudness_of

pytestmark = pytest.mark.slow

SECONDS = 3


@pytest.fixture
def run_types() -> tuple[str, ...]:
    return ("mail", "transcode", "publish", "audio_track")


def tone(path: Path, seconds: float, volume_db: float = -20) -> Path:
    """An MP3 of a 660 Hz tone (another language, as far as the tests care), far from -16 LUFS."""
    run_ffmpeg(
        *["-f", "lavfi", "-i", f"sine=frequency=660:sample_rate=44100:duration={seconds}"],
        *["-af", f"volume={volume_db}dB", "-c:a", "libmp3lame", str(path)],
    )
    return path


def ladder(settings, doc) -> Path:
    return Path(settings.media.root) / Path(doc["hls_path"]).parent


def picture_bytes(folder: Path) -> dict[str, str]:
    """Every file of every video rung, by name, hashed."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for rung in folder.iterdir()
        if re.fullmatch(r"\d+p", rung.name)
        for p in sorted(rung.iterdir())
    }


async def add_track(api, token, video_id: str, file: Path, **fields: str):
    body, content_type = multipart(fields, file.read_bytes(), filename=file.name)
    return await api.post(
        f"/api/videos/{video_id}/audio/", body=body, headers={"Content-Type": content_type}, token=token
    )


async def ready_video(api, staff_token, db, tmp_path) -> str:
    """A ready video of SECONDS with its own sound."""
    video_id = await upload(api, staff_token, make_clip(tmp_path / "video.mp4", "320x180", SECONDS))
    await wait_for_status(db, video_id, "ready")
    return video_id


async def test_an_added_language_is_listed_by_both_manifests_and_the_picture_is_untouched(
    api, staff_token, db, settings, tmp_path
):
    video_id = await ready_video(api, staff_token, db, tmp_path)
    doc = await db.videos.find_one({"_id": ObjectId(video_id)})
    folder = ladder(settings, doc)
    before = picture_bytes(folder)

    reply = await add_track(
        api, staff_token, video_id, tone(tmp_path / "de.mp3", SECONDS), language="de", label="Deutsch",
        default="true",
    )  # fmt: skip
    assert reply.code == 202, reply.data
    track = reply.data
    assert track["language"] == "de" and track["label"] == "Deutsch" and track["default"] is True
    assert track["status"] == "processing"

    await wait_for(db, video_id, lambda d: d["audio_tracks"][0]["status"] == "ready", timeout=60)
    shown = (await api.get(f"/api/videos/{video_id}/", token=staff_token)).data
    assert shown["audio_tracks"] == [{**track, "status": "ready", "error": None}]

    rendition = f"audio-{track['id']}"
    master = (folder / "master.m3u8").read_text()
    assert (
        f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",LANGUAGE="de",NAME="Deutsch",DEFAULT=YES,AUTOSELECT=YES,'
        f'CHANNELS="2",URI="{rendition}/index.m3u8"'
    ) in master
    assert 'LANGUAGE="und",NAME="Original",DEFAULT=NO' in master  # the source's own sound stays
    mpd = (folder / "manifest.mpd").read_text()
    assert 'contentType="audio" mimeType="audio/mp4" lang="de"' in mpd
    assert f'initialization="{rendition}/init.mp4"' in mpd
    # the same segment numbering as the source's own audio, and the same length within a frame
    own = re.findall(r"^seg_\d+\.m4s$", (folder / "audio" / "index.m3u8").read_text(), re.MULTILINE)
    added = re.findall(r"^seg_\d+\.m4s$", (folder / rendition / "index.m3u8").read_text(), re.MULTILINE)
    assert added == own
    assert picture_bytes(folder) == before  # nothing of the picture was encoded again

    joined = tmp_path / "added.mp4"
    parts = [folder / rendition / "init.mp4", *sorted((folder / rendition).glob("*.m4s"))]
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    loudness = await asyncio.to_thread(loudness_of, joined)
    assert -17 <= loudness.integrated <= -15  # loudness-normalised like every rendition

    kept = Path(settings.media.root) / "videos" / video_id / "tracks" / rendition / "source"
    assert kept.is_file()  # the upload is kept beside the ladders: a new ladder gets the track again
    gone = await api.delete(f"/api/videos/{video_id}/audio/{track['id']}/", token=staff_token)
    assert gone.code == 204
    assert not kept.parent.exists()  # and goes with the track
    assert rendition not in (folder / "master.m3u8").read_text()
    assert 'LANGUAGE="und",NAME="Original",DEFAULT=YES' in (folder / "master.m3u8").read_text()
    assert not (folder / rendition).exists()
    assert (await api.get(f"/api/videos/{video_id}/", token=staff_token)).data["audio_tracks"] == []
    assert picture_bytes(folder) == before


async def test_a_track_whose_length_is_off_by_more_than_a_second_is_refused_with_a_sentence(
    api, staff_token, db, tmp_path
):
    video_id = await ready_video(api, staff_token, db, tmp_path)
    reply = await add_track(
        api, staff_token, video_id, tone(tmp_path / "long.mp3", SECONDS + 2), language="fr"
    )
    assert reply.code == 400
    assert reply.data == {
        "file": [
            f"The audio lasts {SECONDS + 2:.1f} s and the video {SECONDS:.1f} s: an audio track must be "
            "within 1 s of the video's length."
        ]
    }


async def test_a_file_without_audio_or_a_hostile_one_is_refused(api, staff_token, tmp_path, db):
    video_id = await ready_video(api, staff_token, db, tmp_path)
    silent = make_clip(tmp_path / "silent.mp4", "160x90", SECONDS, audio=False)
    reply = await add_track(api, staff_token, video_id, silent, language="fr")
    assert reply.code == 400
    assert reply.data == {"file": ["The file has no audio stream that can be read."]}

    tone(tmp_path / "inner.mp3", SECONDS)
    playlist = tmp_path / "list.m3u8"  # a playlist naming another file on the server: never opened
    playlist.write_text(f"#EXTM3U\n#EXTINF:{SECONDS},\nfile:{tmp_path / 'inner.mp3'}\n#EXT-X-ENDLIST\n")
    reply = await add_track(api, staff_token, video_id, playlist, language="fr")
    assert reply.code == 400
    assert reply.data == {"file": ["The file has no audio stream that can be read."]}


async def test_bad_fields_and_callers_are_refused(api, staff_token, user_token, db, tmp_path):
    video_id = await ready_video(api, staff_token, db, tmp_path)
    track = tone(tmp_path / "fr.mp3", SECONDS)
    reply = await add_track(api, staff_token, video_id, track, language="not a language!")
    assert reply.code == 400 and "language" in reply.data
    assert (await add_track(api, user_token, video_id, track, language="fr")).code == 403
    assert (await add_track(api, staff_token, str(ObjectId()), track, language="fr")).code == 404
    assert (await add_track(api, staff_token, "nonsense", track, language="fr")).code == 404
    pending = ObjectId()
    await db.videos.insert_one({"_id": pending, "title": "not yet", "status": "pending"})
    reply = await add_track(api, staff_token, str(pending), track, language="fr")
    assert reply.code == 409
    assert reply.data == {"detail": "Audio tracks can be added to a ready video with a CMAF ladder only."}
    gone = await api.delete(f"/api/videos/{video_id}/audio/{ObjectId()}/", token=staff_token)
    assert gone.code == 404


async def test_the_source_sound_is_listed_in_the_language_its_stream_is_tagged_with(
    api, staff_token, db, settings, tmp_path
):
    plain = make_clip(tmp_path / "plain.mp4", "160x90", 1)
    tagged = tmp_path / "tagged.mp4"
    run_ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:a:0", "language=deu", str(tagged))
    video_id = await upload(api, staff_token, tagged)
    doc = await wait_for_status(db, video_id, "ready")
    master = (ladder(settings, doc) / "master.m3u8").read_text()
    assert 'TYPE=AUDIO,GROUP-ID="aud",LANGUAGE="deu",NAME="Original",DEFAULT=YES' in master
    assert 'lang="deu"' in (ladder(settings, doc) / "manifest.mpd").read_text()


async def test_a_retranscoded_video_keeps_its_added_language_in_the_new_ladder(
    api, staff_token, db, settings, tmp_path
):
    video_id = await ready_video(api, staff_token, db, tmp_path)
    reply = await add_track(
        api, staff_token, video_id, tone(tmp_path / "de.mp3", SECONDS), language="de", label="Deutsch"
    )
    track = reply.data
    await wait_for(db, video_id, lambda d: d["audio_tracks"][0]["status"] == "ready", timeout=60)
    old = (await db.videos.find_one({"_id": ObjectId(video_id)}))["hls_path"]

    assert (await api.post(f"/api/videos/{video_id}/retranscode/", token=staff_token)).code == 202
    doc = await wait_for(
        db,
        video_id,
        lambda d: (
            d["status"] == "ready" and d["hls_path"] != old and d["audio_tracks"][0]["status"] == "ready"
        ),
        timeout=90,
    )
    shown = (await api.get(f"/api/videos/{video_id}/", token=staff_token)).data
    assert shown["audio_tracks"] == [{**track, "status": "ready", "error": None}]
    rendition = f"audio-{track['id']}"
    master = (await api.get(shown["hls_url"])).body.decode()
    assert (
        f'LANGUAGE="de",NAME="Deutsch",DEFAULT=NO,AUTOSELECT=YES,CHANNELS="2",URI="{rendition}/index.m3u8"'
        in master
    )
    assert 'lang="de"' in (await api.get(shown["dash_url"])).body.decode()
    base = shown["hls_url"].rsplit("/", 1)[0]
    playlist = await api.get(f"{base}/{rendition}/index.m3u8")
    assert playlist.code == 200
    first = next(line for line in playlist.body.decode().splitlines() if line.startswith("seg_"))
    for name in ("init.mp4", first):
        served = await api.get(f"{base}/{rendition}/{name}")
        assert served.code == 200 and len(served.body) > 0
    assert (ladder(settings, doc) / rendition / "index.m3u8").is_file()
