"""The key layout of a video's media: every name a video's bytes have, in one place.

Keys are '/'-paths relative to the store's root, the same on every backend (core/storage/base.py), and
the same below MEDIA_ROOT for the scratch folders of a transcode:

    videos/<id>/source                      the upload, as it came
    videos/<id>/.hls-tmp-<run>/             scratch: the ladder a transcode run is writing (local disk)
    videos/<id>/hls-<run>/                  a published ladder (the live prefix while it grows)
        master.m3u8, manifest.mpd           the HLS master playlist and the DASH manifest (CMAF ladders)
        <height>p/index.m3u8                one rung: init.mp4 + seg_NNNNN.m4s (CMAF), or seg_NNNNN.ts
                                            (MPEG-TS: ladders made before CMAF, which keep playing)
        audio/index.m3u8, init.mp4, seg_NNNNN.m4s   the audio, encoded once for every rung (CMAF)
        thumbnail.jpg, storyboard.vtt       pictures
        av1-<height>p/                      an AV1 rung, on the H.264 rungs' segment boundaries
        audio-<id>/                         an added audio track (another language), on the same timeline
        subs-<id>/index.m3u8, seg_NNNNN.vtt, subtitles.vtt   a subtitle track (segmented and whole)
        chapters.vtt                        chapters (WebVTT)
        presentation.json                   what the two manifests list (transcode/presentation.py);
                                            stored, never served
    videos/<id>/tracks/<id>/subtitles.vtt   a subtitle track as uploaded, cleaned (a new ladder gets it)
    videos/<id>/tracks/audio-<id>/source    an added audio track's file as uploaded (encoded again onto
                                            a new ladder, by whichever transcode node takes the job)

A new kind of rendition adds its key function here and its name pattern to `LADDER_FILE`.
"""

from __future__ import annotations

import re

from bson import ObjectId

VIDEOS = "videos"
SOURCE = "source"
LADDER_STEM = "hls"
SCRATCH_STEM = ".hls-tmp-"
MASTER = "master.m3u8"
MANIFEST = "manifest.mpd"
INIT = "init.mp4"  # a CMAF rendition's init segment
THUMBNAIL = "thumbnail.jpg"
STORYBOARD = "storyboard.vtt"

# A rendition's folder: an H.264 rung (`720p`), an AV1 rung (`av1-720p`), the source's sound (`audio`), an
# added audio track (`audio-<id>`); a subtitle track's (`subs-<id>`: segmented WebVTT).
RENDITION = r"(\d{2,4}p|av1-\d{2,4}p|audio|audio-[0-9a-f]{6,24})"
SUBTITLES = r"subs-[0-9a-f]{6,24}"
# The only names a ladder's files have: anything else (traversal, encodings, NUL) is simply not found.
# (`presentation.json`, the record the manifests are written from, is stored but never served.)
LADDER_FILE = re.compile(
    r"^(master\.m3u8|manifest\.mpd|thumbnail\.jpg|storyboard\.vtt|chapters\.vtt|(storyboard|sprite)(_\d{1,4})?\.jpg"
    rf"|{RENDITION}/(index\.m3u8|init\.mp4|seg_\d{{5}}\.(ts|m4s))"
    rf"|{SUBTITLES}/(index\.m3u8|seg_\d{{5}}\.vtt|subtitles\.vtt))$"
)
# A whole segment of a rendition, or its init segment: what its playlist needs stored before it
# (FFmpeg's unfinished segments end in .tmp).
SEGMENT = re.compile(rf"^({RENDITION}/(seg_\d+\.(ts|m4s)|init\.mp4)|{SUBTITLES}/seg_\d+\.vtt)$")
# A rendition's playlist (a rung's, the audio's, a subtitle track's).
RENDITION_PLAYLIST = re.compile(rf"^({RENDITION}|{SUBTITLES})/index\.m3u8$")
PRESENTATION = "presentation.json"
CHAPTERS = "chapters.vtt"
TRACKS = "tracks"  # videos/<id>/tracks/<track id>/subtitles.vtt: a subtitle track as uploaded, cleaned
# videos/<id>/tracks/audio-<track id>/source: an added audio track's file as uploaded (a new ladder's
# audio_track job encodes it again; any transcode node fetches it)


def video_id_text(video_id: ObjectId | str) -> str:
    """A video id as it appears in keys (hex only: no path tricks possible)."""
    return str(ObjectId(str(video_id)))


def video_prefix(video_id: ObjectId | str) -> str:
    """Everything of one video: ``videos/<id>/``."""
    return f"{VIDEOS}/{video_id_text(video_id)}/"


def source_key(video_id: ObjectId | str) -> str:
    """The upload of a video."""
    return video_prefix(video_id) + SOURCE


def ladder_name(run: str) -> str:
    """The folder of one run's published ladder."""
    return f"{LADDER_STEM}-{run}"


def ladder_prefix(video_id: ObjectId | str, run: str) -> str:
    """Where one run's ladder is published, and where it grows while it is made (the live prefix)."""
    return f"{video_prefix(video_id)}{ladder_name(run)}/"


def scratch_name(run: str) -> str:
    """The scratch folder of one transcode run, beside the video's other files."""
    return f"{SCRATCH_STEM}{run}"


def is_scratch(name: str) -> bool:
    """A folder a transcode run writes (swept once untouched for a grace period)."""
    return name.startswith(SCRATCH_STEM)


def is_ladder(name: str) -> bool:
    """A published ladder folder (``hls-<run>``)."""
    return name.startswith(LADDER_STEM + "-")


def rung_playlist(height: int) -> str:
    """A picture rung's playlist below the ladder folder."""
    return f"{height}p/index.m3u8"


def subtitles_folder(track_id: str) -> str:
    """A subtitle track's folder below the ladder folder (a new id for each upload: no stale cache)."""
    return f"subs-{track_id}"


def track_folder(video_id: ObjectId | str, track_id: str) -> str:
    """Where a subtitle track is kept beside the ladders (a new ladder gets it again)."""
    return f"{video_prefix(video_id)}{TRACKS}/{track_id}/"


def track_source_key(video_id: ObjectId | str, track_id: str) -> str:
    """A subtitle track's cleaned WebVTT, as kept."""
    return f"{track_folder(video_id, track_id)}subtitles.vtt"


def audio_track_folder(video_id: ObjectId | str, track_id: str) -> str:
    """Where an added audio track's uploaded file is kept beside the ladders."""
    return f"{video_prefix(video_id)}{TRACKS}/audio-{track_id}/"


def audio_track_source_key(video_id: ObjectId | str, track_id: str) -> str:
    """An added audio track's file, as uploaded."""
    return f"{audio_track_folder(video_id, track_id)}{SOURCE}"


def audio_playlist(language: str) -> str:
    """An audio track's playlist below the ladder folder (room for the next round)."""
    return f"audio/{language}/index.m3u8"
