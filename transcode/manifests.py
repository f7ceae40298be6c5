"""A ladder's playlists while and after FFmpeg writes it: progress, the moment it can be played, the
EVENT → VOD rewrite, and the two manifests Python writes (`master.m3u8`, `manifest.mpd`) from the
ladder's presentation record (transcode/presentation.py).

FFmpeg writes one folder per rendition (transcode/ladder.py); the manifests over them are made from the
renditions' own MP4 boxes (transcode/cmaf.py), so CODECS and the DASH SegmentTimeline are exact.
"""

from __future__ import annotations

import re
from pathlib import Path

from transcode.cmaf import Rendition, read_init, read_rendition
from transcode.ladder import AUDIO, EncodeSettings, Rung, renditions
from transcode.presentation import FILE as PRESENTATION
from transcode.presentation import AudioTrack, Presentation

MASTER = "master.m3u8"
MANIFEST = "manifest.mpd"
SEGMENT = re.compile(r"#EXTINF:([\d.]+),\s*\n(\S+)")


def measure(playlist: Path) -> tuple[int, int]:
    """(peak, average) bits per second of a VOD playlist's segments."""
    text = playlist.read_text()
    peak, total_bits, total_s = 0, 0, 0.0
    for duration, name in SEGMENT.findall(text):
        seconds = max(float(duration), 0.001)
        bits = (playlist.parent / name).stat().st_size * 8
        peak = max(peak, int(bits / seconds))
        total_bits += bits
        total_s += seconds
    return peak, int(total_bits / total_s) if total_s else 0


def encoded_seconds(playlist: Path) -> float:
    """The seconds of whole segments a growing playlist lists (0 before it exists).

    The encode's progress: FFmpeg's own report (-progress) says nothing until every output has its
    first frame, and the thumbnail and storyboard outputs get theirs only seconds (a sheet: minutes)
    into the video."""
    try:
        return sum(float(duration) for duration, _ in SEGMENT.findall(playlist.read_text()))
    except (OSError, ValueError):
        return 0.0


def first_segments_ready(out_dir: Path, rungs: list[Rung], has_audio: bool) -> bool:
    """True once every rendition's playlist (each rung's, the audio's) lists a (complete) segment."""
    for name in renditions(rungs, has_audio):
        try:
            if "#EXTINF:" not in (out_dir / name / "index.m3u8").read_text():
                return False
        except OSError:
            return False
    return True


def finish_playlists(out_dir: Path, rungs: list[Rung], has_audio: bool) -> None:
    """Turn the finished EVENT playlists into VOD ones (FFmpeg adds EXT-X-ENDLIST but keeps the type)."""
    for name in renditions(rungs, has_audio):
        playlist = out_dir / name / "index.m3u8"
        text = playlist.read_text()
        if "#EXT-X-ENDLIST" not in text:
            text = text.rstrip("\n") + "\n#EXT-X-ENDLIST\n"
        replace_file(playlist, text.replace("#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-PLAYLIST-TYPE:VOD"))


def replace_file(path: Path, text: str) -> None:
    """Write a file that is being served: a temporary file renamed over it, so a reader sees old or new."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    temp.replace(path)


def frame_rate(fps: float) -> float:
    return min(fps or 30.0, 60.0)


def provisional_master(
    out_dir: Path, rungs: list[Rung], has_audio: bool, fps: float, settings: EncodeSettings
) -> list[dict[str, int]]:
    """The master while the encode runs (every rendition has its init segment and a first segment):
    CODECS from the init segments, BANDWIDTH each rung's cap plus the audio bitrate."""
    audio = None
    if has_audio:
        audio = Rendition(
            AUDIO, read_init(out_dir / AUDIO / "init.mp4"), peak_bps=settings.audio_bitrate_k * 1000
        )
    videos = [
        Rendition(rung.name, read_init(out_dir / rung.name / "init.mp4"), peak_bps=rung.max_kbps * 1000)
        for rung in rungs
    ]
    presentation = Presentation(frame_rate(fps), settings.segment_s, tuple(videos), main_audio(audio))
    replace_file(out_dir / MASTER, presentation.master_text())
    return listed(rungs, videos, audio)


def write_manifests(
    out_dir: Path, rungs: list[Rung], has_audio: bool, fps: float, segment_s: int
) -> list[dict[str, int]]:
    """The finished ladder's presentation record, its master playlist (BANDWIDTH and AVERAGE-BANDWIDTH
    measured over its segments) and its DASH manifest, over the same files; the renditions as the
    video lists them."""

    def rendition(name: str) -> Rendition:
        playlist = out_dir / name / "index.m3u8"
        peak, average = measure(playlist)
        names = [segment for _, segment in SEGMENT.findall(playlist.read_text())]
        return read_rendition(out_dir / name, names, peak, average)

    audio = rendition(AUDIO) if has_audio else None
    videos = [rendition(rung.name) for rung in rungs]
    presentation = Presentation(frame_rate(fps), segment_s, tuple(videos), main_audio(audio))
    write_presentation(out_dir, presentation)
    return listed(rungs, videos, audio)


def write_presentation(out_dir: Path, presentation: Presentation) -> None:
    """A ladder folder's record and the two manifests made from it; the master last, as a player
    reads it first."""
    replace_file(out_dir / PRESENTATION, presentation.to_json())
    replace_file(out_dir / MANIFEST, presentation.mpd_text())
    replace_file(out_dir / MASTER, presentation.master_text())


def main_audio(audio: Rendition | None, language: str = "und") -> tuple[AudioTrack, ...]:
    """The source's own sound as the ladder's first (default) audio track."""
    if audio is None:
        return ()
    return (AudioTrack(audio, language=language or "und", label="Original", default=True),)


def listed(rungs: list[Rung], videos: list[Rendition], audio: Rendition | None) -> list[dict[str, int]]:
    """The renditions as the video document lists them: a rung's bandwidth counts the audio's."""
    extra = audio.peak_bps if audio else 0
    return [
        {"height": rung.height, "width": rung.width, "bandwidth": video.peak_bps + extra}
        for rung, video in zip(rungs, videos, strict=True)
    ]
