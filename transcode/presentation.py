"""A CMAF ladder's presentation: everything its two manifests list, kept as one record
(`presentation.json`, stored beside `master.m3u8`), from which `master.m3u8` and `manifest.mpd` are
written — when the ladder is made, and again whenever a track is added or removed or the AV1 rungs are
whole, with nothing encoded again.

What it lists:

- `videos`: the picture's renditions, every codec (H.264 rungs `720p`, AV1 rungs `av1-720p`). A
  rendition is listed only once it is whole: a player never sees a level it cannot load.
- `audio`: the sound's renditions, one per language (`audio` is the source's own; `audio-<id>` an added
  one), every one on the ladder's timeline and in the one group every video variant names.
- `text`: subtitle tracks (`subs-<id>/`: a segmented WebVTT playlist for HLS and the whole file for
  DASH).

The HLS master lists a variant per video rendition with its exact CODECS (from its own boxes,
transcode/cmaf.py), the audio renditions as `EXT-X-MEDIA TYPE=AUDIO`, the subtitles as `TYPE=SUBTITLES`,
and an audio-only variant last (Apple's HLS authoring rules; hls.js skips it when there is picture). The
MPD has an AdaptationSet per video codec, per audio track and per text track.

The record is plain JSON (`to_json` / `from_json`); a segment list is stored as runs, so a two-hour
title's record stays a few kilobytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from xml.sax.saxutils import quoteattr

from transcode.cmaf import CHANNEL_SCHEME, Rendition, Track, timeline

FILE = "presentation.json"
AUDIO_GROUP = "aud"
TEXT_GROUP = "subs"
VERSION = 1
MAIN_AUDIO = "audio"


@dataclass(frozen=True)
class AudioTrack:
    """One audio rendition of the group: the source's own (`audio`) or an added language."""

    rendition: Rendition
    language: str = "und"  # BCP 47
    label: str = ""
    default: bool = False

    @property
    def name(self) -> str:
        return self.rendition.name


@dataclass(frozen=True)
class TextTrack:
    """A subtitle track: `<folder>/index.m3u8` (segmented WebVTT) and `<folder>/<whole>` (one file)."""

    folder: str  # subs-<id>
    language: str
    label: str
    default: bool = False
    whole: str = "subtitles.vtt"
    bandwidth: int = 256  # bits per second: what a text track costs, for the MPD's required attribute

    @property
    def playlist(self) -> str:
        return f"{self.folder}/index.m3u8"

    @property
    def file(self) -> str:
        return f"{self.folder}/{self.whole}"


@dataclass(frozen=True)
class Presentation:
    fps: float
    segment_s: int
    videos: tuple[Rendition, ...] = ()
    audio: tuple[AudioTrack, ...] = ()
    text: tuple[TextTrack, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # what a newer writer added; kept as it came

    # --- changes (each returns a new record) ----------------------------------------------------

    def with_videos(self, added: Iterable[Rendition]) -> Presentation:
        """The renditions added (one of the same name replaced); H.264 first (the first variant is the
        one every player can start with), then by height within a codec, lowest first as the encoder
        lists them."""
        added = list(added)
        names = {r.name for r in added}
        videos = [r for r in self.videos if r.name not in names] + added
        videos.sort(key=lambda r: (codec_rank(r.track.codecs), r.track.height, r.peak_bps))
        return replace(self, videos=tuple(videos))

    def without_videos(self, codec_prefix: str) -> Presentation:
        """The video renditions of one codec (e.g. ``av01``) taken out."""
        kept = tuple(r for r in self.videos if not r.track.codecs.startswith(codec_prefix))
        return replace(self, videos=kept)

    def with_audio(self, track: AudioTrack) -> Presentation:
        """An audio track added (one of the same rendition name replaced); a default one makes the
        others not default."""
        others = [t for t in self.audio if t.name != track.name]
        if track.default:
            others = [replace(t, default=False) for t in others]
        return replace(self, audio=tuple(_one_default([*others, track])))

    def without_audio(self, name: str) -> Presentation:
        return replace(self, audio=tuple(_one_default([t for t in self.audio if t.name != name])))

    def with_text(self, track: TextTrack) -> Presentation:
        """A subtitle track added (one of the same folder or the same language replaced)."""
        others = [t for t in self.text if t.folder != track.folder and t.language != track.language]
        if track.default:
            others = [replace(t, default=False) for t in others]
        return replace(self, text=tuple([*others, track]))

    def without_text(self, folder: str) -> Presentation:
        return replace(self, text=tuple(t for t in self.text if t.folder != folder))

    # --- reading ---------------------------------------------------------------------------------

    @property
    def codecs(self) -> list[str]:
        """The video codec families listed (``avc1``, ``av01``), in the master's order."""
        found: list[str] = []
        for video in self.videos:
            family = video.track.codecs.split(".")[0]
            if family not in found:
                found.append(family)
        return found

    @property
    def default_audio(self) -> AudioTrack | None:
        return next((t for t in self.audio if t.default), self.audio[0] if self.audio else None)

    # --- the two manifests -------------------------------------------------------------------------

    def master_text(self) -> str:
        """The HLS master playlist."""
        lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
        for track in self.audio:
            yes = "YES" if track.default else "NO"
            lines.append(
                f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",LANGUAGE="{track.language}",'
                f"NAME={_quoted(track.label or track.language)},DEFAULT={yes},AUTOSELECT=YES,"
                f'CHANNELS="{track.rendition.track.channels}",URI="{track.name}/index.m3u8"'
            )
        for text in self.text:
            yes = "YES" if text.default else "NO"
            lines.append(
                f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="{TEXT_GROUP}",LANGUAGE="{text.language}",'
                f"NAME={_quoted(text.label or text.language)},DEFAULT={yes},AUTOSELECT=YES,"
                f'FORCED=NO,URI="{text.playlist}"'
            )
        audio = self.default_audio
        audio_codecs = sorted({t.rendition.track.codecs for t in self.audio})
        audio_peak = max((t.rendition.peak_bps for t in self.audio), default=0)
        audio_average = max((t.rendition.average_bps for t in self.audio), default=0)
        groups = (f',AUDIO="{AUDIO_GROUP}"' if audio else "") + (
            f',SUBTITLES="{TEXT_GROUP}"' if self.text else ""
        )
        for video in self.videos:
            bandwidth = f"BANDWIDTH={video.peak_bps + audio_peak}"
            if video.average_bps:
                bandwidth += f",AVERAGE-BANDWIDTH={video.average_bps + audio_average}"
            codecs = ",".join([video.track.codecs, *audio_codecs])
            lines.append(
                f"#EXT-X-STREAM-INF:{bandwidth},RESOLUTION={video.track.width}x{video.track.height},"
                f'FRAME-RATE={self.fps:.3f},CODECS="{codecs}"{groups}'
            )
            lines.append(f"{video.name}/index.m3u8")
        if audio is not None and self.videos:
            # The audio-only variant: for listening, and for a network too poor for any picture.
            bandwidth = f"BANDWIDTH={audio.rendition.peak_bps}"
            if audio.rendition.average_bps:
                bandwidth += f",AVERAGE-BANDWIDTH={audio.rendition.average_bps}"
            lines.append(f'#EXT-X-STREAM-INF:{bandwidth},CODECS="{",".join(audio_codecs)}"{groups}')
            lines.append(f"{audio.name}/index.m3u8")
        return "\n".join(lines) + "\n"

    def mpd_text(self) -> str:
        """A static DASH manifest over the same init and media segments as the HLS playlists."""
        timed = [*self.videos, *(t.rendition for t in self.audio)]
        duration = max((r.seconds for r in timed), default=0.0)
        lines = [
            '<?xml version="1.0" encoding="utf-8"?>',
            '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" '
            f'type="static" mediaPresentationDuration="PT{duration:.3f}S" '
            f'minBufferTime="PT{self.segment_s}S">',
            '  <Period id="0" start="PT0S">',
        ]
        set_id = 0
        for family in self.codecs:
            lines.append(
                f'    <AdaptationSet id="{set_id}" contentType="video" mimeType="video/mp4" '
                f'segmentAlignment="true" startWithSAP="1" frameRate="{self.fps:g}">'
            )
            for video in self.videos:
                if video.track.codecs.split(".")[0] == family:
                    size = f' width="{video.track.width}" height="{video.track.height}" sar="1:1"'
                    lines.append(_representation(video, size))
            lines.append("    </AdaptationSet>")
            set_id += 1
        for track in self.audio:
            rendition = track.rendition
            role = "main" if track.default else "alternate"
            lines += [
                f'    <AdaptationSet id="{set_id}" contentType="audio" mimeType="audio/mp4" '
                f'lang={quoteattr(track.language)} segmentAlignment="true" startWithSAP="1">',
                f'      <Role schemeIdUri="urn:mpeg:dash:role:2011" value="{role}"/>',
                f"      <Label>{_text(track.label or track.language)}</Label>",
                f'      <AudioChannelConfiguration schemeIdUri="{CHANNEL_SCHEME}" '
                f'value="{rendition.track.channels}"/>',
                _representation(rendition, f' audioSamplingRate="{rendition.track.sample_rate}"'),
                "    </AdaptationSet>",
            ]
            set_id += 1
        for text in self.text:
            role = "subtitle"
            lines += [
                f'    <AdaptationSet id="{set_id}" contentType="text" mimeType="text/vtt" '
                f"lang={quoteattr(text.language)}>",
                f'      <Role schemeIdUri="urn:mpeg:dash:role:2011" value="{role}"/>',
                f"      <Label>{_text(text.label or text.language)}</Label>",
                f'      <Representation id={quoteattr(text.folder)} bandwidth="{text.bandwidth}">'
                f"<BaseURL>{_text(text.file)}</BaseURL></Representation>",
                "    </AdaptationSet>",
            ]
            set_id += 1
        lines += ["  </Period>", "</MPD>", ""]
        return "\n".join(lines)

    # --- the stored record ---------------------------------------------------------------------------

    def to_json(self) -> str:
        record = {
            **self.extra,
            "version": VERSION,
            "fps": self.fps,
            "segment_s": self.segment_s,
            "videos": [_rendition_record(r) for r in self.videos],
            "audio": [
                {
                    "rendition": _rendition_record(t.rendition),
                    "language": t.language,
                    "label": t.label,
                    "default": t.default,
                }
                for t in self.audio
            ],
            "text": [
                {
                    "folder": t.folder,
                    "language": t.language,
                    "label": t.label,
                    "default": t.default,
                    "whole": t.whole,
                    "bandwidth": t.bandwidth,
                }
                for t in self.text
            ],
        }
        return json.dumps(record, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Presentation:
        """The record as stored; ValueError when it is not one."""
        try:
            record = json.loads(text)
            known = {"version", "fps", "segment_s", "videos", "audio", "text"}
            return cls(
                fps=float(record["fps"]),
                segment_s=int(record["segment_s"]),
                videos=tuple(_rendition_of(r) for r in record.get("videos", [])),
                audio=tuple(
                    AudioTrack(
                        rendition=_rendition_of(t["rendition"]),
                        language=str(t.get("language") or "und"),
                        label=str(t.get("label") or ""),
                        default=bool(t.get("default")),
                    )
                    for t in record.get("audio", [])
                ),
                text=tuple(
                    TextTrack(
                        folder=str(t["folder"]),
                        language=str(t["language"]),
                        label=str(t.get("label") or ""),
                        default=bool(t.get("default")),
                        whole=str(t.get("whole") or "subtitles.vtt"),
                        bandwidth=int(t.get("bandwidth") or 256),
                    )
                    for t in record.get("text", [])
                ),
                extra={k: v for k, v in record.items() if k not in known},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"not a presentation record: {err}") from err


def codec_rank(codecs: str) -> int:
    """The order codecs are listed in: H.264 first (what every player decodes), then the rest."""
    return {"avc1": 0, "avc3": 0, "hvc1": 1, "hev1": 1, "av01": 2}.get(codecs.split(".")[0], 3)


def _one_default(tracks: list[AudioTrack]) -> list[AudioTrack]:
    """Exactly one default audio track when there is any: the first when none says so."""
    if tracks and not any(t.default for t in tracks):
        tracks[0] = replace(tracks[0], default=True)
    return tracks


def _quoted(value: str) -> str:
    """An HLS quoted-string: no double quote, no line break (RFC 8216 §4.2)."""
    cleaned = "".join(" " if ch in '"\r\n' else ch for ch in value)
    return f'"{cleaned}"'


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _representation(rendition: Rendition, attributes: str) -> str:
    track = rendition.track
    first = rendition.segments[0][0] if rendition.segments else 1
    template = (
        f'<SegmentTemplate timescale="{track.timescale}" '
        f'presentationTimeOffset="{track.presentation_offset}" '
        f"initialization={quoteattr(rendition.name + '/init.mp4')} "
        f'media={quoteattr(rendition.name + "/seg_$Number%05d$.m4s")} startNumber="{first}">'
        f"<SegmentTimeline>{timeline(rendition.segments, track.presentation_offset)}</SegmentTimeline>"
        "</SegmentTemplate>"
    )
    return (
        f"      <Representation id={quoteattr(rendition.name)} codecs={quoteattr(track.codecs)} "
        f'bandwidth="{rendition.peak_bps}"{attributes}>{template}</Representation>'
    )


def _rendition_record(rendition: Rendition) -> dict[str, Any]:
    """A rendition as stored: its track's fields and its segments as runs [first number, first
    decode time, duration, count] of back-to-back segments of one duration."""
    runs: list[list[int]] = []
    for number, decoded, duration in rendition.segments:
        if runs:
            n, t, d, c = runs[-1]
            if d == duration and n + c == number and t + d * c == decoded:
                runs[-1][3] += 1
                continue
        runs.append([number, decoded, duration, 1])
    return {
        "name": rendition.name,
        "track": rendition.track.__dict__,
        "runs": runs,
        "peak_bps": rendition.peak_bps,
        "average_bps": rendition.average_bps,
    }


def _rendition_of(record: dict[str, Any]) -> Rendition:
    segments = tuple(
        (n + i, t + d * i, d) for n, t, d, count in record.get("runs", []) for i in range(int(count))
    )
    return Rendition(
        name=str(record["name"]),
        track=Track(**record["track"]),
        segments=segments,
        peak_bps=int(record.get("peak_bps") or 0),
        average_bps=int(record.get("average_bps") or 0),
    )
