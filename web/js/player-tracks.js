// The player's tracks: the captions, audio-language and quality menus over hls.js's subtitleTracks,
// audioTracks and levels (or, without hls.js, the media element's own tracks and <track>s made from the
// video JSON's `subtitles`), and the captions drawn by the player itself, above its controls.
import { menuButton } from "./player-controls.js";

export function codecName(level) {
  const codecs = (level?.videoCodec || level?.attrs?.CODECS || "").toLowerCase();
  if (codecs.startsWith("av01")) return "AV1";
  if (codecs.startsWith("hvc1") || codecs.startsWith("hev1")) return "HEVC";
  if (codecs.startsWith("avc")) return "H.264";
  return "";
}

export function levelLabel(level) {
  const size = level.height ? `${level.height}p` : `${Math.round(level.bitrate / 1000)} kbit/s`;
  return codecName(level) === "AV1" ? `${size} AV1` : size;
}


// {captions, audio, quality} menus and `cues` (the captions layer) to place; attach(hls) once hls.js
// exists; mark(key, value) publishes the state (data-* attributes the tests read); onSwitch(level) is
// told when the picture on screen changes rendition.
export function trackMenus({ el, media, video, flash, mark, onSwitch }) {
  const captions = menuButton(el, { id: "captions", name: "Captions", iconName: "captions", onPick: pickCaptions });
  const audio = menuButton(el, { id: "audio", name: "Audio", iconName: "audio", onPick: pickAudio });
  const quality = menuButton(el, { id: "quality", name: "Quality", onPick: pickQuality });
  captions.wrapper.hidden = true;
  audio.wrapper.hidden = true;
  quality.setLabel("Auto");
  const cues = el("div", { class: "vp-captions", "aria-live": "off", hidden: true });

  // ---- captions ---------------------------------------------------------------------------------
  let hls = null;
  let lastCaptions = -1;
  const textKinds = (t) => t.kind === "subtitles" || t.kind === "captions";
  const ownTracks = () => Array.from(media.querySelectorAll("track"), (t) => t.track);
  function captionChoices() {
    if (hls && hls.subtitleTracks.length) {
      return { list: hls.subtitleTracks.map((t) => ({ label: t.name || t.lang, lang: t.lang, def: t.default })), current: hls.subtitleTrack };
    }
    const tracks = ownTracks();
    return {
      list: tracks.map((t) => ({ label: t.label || t.language, lang: t.language })),
      current: tracks.findIndex((t) => t.mode !== "disabled"),
    };
  }
  function pickCaptions(index) {
    if (index >= 0) lastCaptions = index;
    if (hls && hls.subtitleTracks.length) {
      hls.subtitleTrack = index;
    } else {
      ownTracks().forEach((t, i) => { t.mode = i === index ? "hidden" : "disabled"; });
    }
    paintCaptionsMenu();
    drawCues();
    const { list } = captionChoices();
    flash(index >= 0 ? `Captions: ${list[index]?.label}` : "Captions off");
  }
  function toggleCaptions() {
    const { list, current } = captionChoices();
    if (!list.length) return flash("No captions");
    if (current >= 0) return pickCaptions(-1);
    const preferred = list.findIndex((t) => t.def);
    pickCaptions(lastCaptions >= 0 ? lastCaptions : Math.max(preferred, 0));
  }
  function paintCaptionsMenu() {
    const { list, current } = captionChoices();
    captions.wrapper.hidden = !list.length;
    captions.setItems([{ label: "Off", value: -1, checked: current < 0 },
      ...list.map((t, i) => ({ label: t.label, value: i, checked: i === current }))]);
    captions.setLabel("", current >= 0 ? list[current]?.label : "off");
    captions.button.classList.toggle("on", current >= 0);
    mark("captions", String(current));
  }
  let drawn = "";
  function drawCues() {
    // The cues at the play head, from the track's cues: activeCues lags behind while paused.
    const t = media.currentTime;
    const lines = [];
    for (const track of media.textTracks) {
      if (!textKinds(track) || track.mode === "disabled") continue;
      if (track.mode === "showing") track.mode = "hidden"; // ours, placed above the controls
      for (const cue of track.cues || []) if (cue.startTime <= t && t < cue.endTime) lines.push(cue);
    }
    const key = lines.map((cue) => `${cue.startTime}|${cue.text}`).join("\n");
    if (key === drawn) return;
    drawn = key;
    cues.replaceChildren(...lines.map((cue) => el("span", { class: "vp-cue" },
      typeof cue.getCueAsHTML === "function" ? cue.getCueAsHTML() : cue.text)));
    cues.hidden = !lines.length;
  }
  const cueTimer = setInterval(drawCues, 250); // cues arrive while paused too
  media.textTracks.addEventListener("addtrack", (event) => {
    event.track.addEventListener("cuechange", drawCues);
    paintCaptionsMenu();
  });
  media.textTracks.addEventListener("change", drawCues);
  media.addEventListener("timeupdate", drawCues);
  function addJsonSubtitles() { // a ladder whose master lists no SUBTITLES, or a player without hls.js
    for (const s of video.subtitles || []) {
      if (!s.url) continue;
      media.append(el("track", { kind: "subtitles", src: s.url, srclang: s.language || "", label: s.label || s.language || "Subtitles" }));
    }
    ownTracks().forEach((t, i) => { t.mode = (video.subtitles[i]?.default) ? "hidden" : "disabled"; });
    paintCaptionsMenu();
  }

  // ---- audio languages and quality ---------------------------------------------------------------
  function audioChoices() {
    if (hls) return { list: hls.audioTracks.map((t) => t.name || t.lang || "Audio"), current: hls.audioTrack };
    const tracks = Array.from(media.audioTracks || []);
    return { list: tracks.map((t) => t.label || t.language || "Audio"), current: tracks.findIndex((t) => t.enabled) };
  }
  function pickAudio(index) {
    if (hls) hls.audioTrack = index;
    else Array.from(media.audioTracks || []).forEach((t, i) => { t.enabled = i === index; });
    paintAudioMenu();
    flash(`Audio: ${audioChoices().list[index]}`);
  }
  function paintAudioMenu() {
    const { list, current } = audioChoices();
    audio.wrapper.hidden = list.length < 2;
    audio.setItems(list.map((label, i) => ({ label, value: i, checked: i === current })));
    audio.setLabel("", list[current] || "default");
    mark("audioTrack", String(current));
  }
  let onScreen = -1; // the level whose picture is showing (the fragment at the play head)
  function paintQuality() {
    if (!hls) return;
    const shown = hls.levels[onScreen];
    const auto = hls.autoLevelEnabled;
    const text = auto ? (shown ? `Auto (${levelLabel(shown)})` : "Auto") : levelLabel(hls.levels[hls.manualLevel] || shown || {});
    quality.setLabel(text);
    quality.check(auto ? -1 : hls.manualLevel);
    mark("level", String(onScreen));
    mark("rendition", shown ? levelLabel(shown) : "");
    mark("codec", shown ? codecName(shown) : "");
  }
  function paintQualityMenu() {
    const order = hls.levels.map((level, index) => ({ level, index }))
      .sort((a, b) => (b.level.height - a.level.height) || (b.level.bitrate - a.level.bitrate));
    quality.setItems([{ label: "Auto", value: -1, checked: hls.autoLevelEnabled },
      ...order.map(({ level, index }) => ({ label: levelLabel(level), value: index, checked: !hls.autoLevelEnabled && hls.manualLevel === index }))]);
    quality.wrapper.hidden = hls.levels.length < 1;
    paintQuality();
  }
  function pickQuality(index) {
    hls.currentLevel = index; // -1: automatic; a fixed level flushes the buffer and shows it at once
    paintQuality();
    flash(index < 0 ? "Quality: Auto" : `Quality: ${levelLabel(hls.levels[index])}`);
  }


  function attach(player) {
    hls = player;
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      paintQualityMenu();
      paintAudioMenu();
      if (!hls.subtitleTracks.length && video.subtitles?.length) addJsonSubtitles();
      else paintCaptionsMenu();
    });
    hls.on(Hls.Events.LEVELS_UPDATED, paintQualityMenu);
    hls.on(Hls.Events.LEVEL_SWITCHED, (_e, data) => { if (onScreen < 0) onScreen = data.level; paintQuality(); });
    hls.on(Hls.Events.FRAG_CHANGED, (_e, { frag }) => {
      if (frag.type !== "main" || frag.level === onScreen) return;
      onScreen = frag.level;
      paintQuality();
      if (hls.levels[onScreen]) onSwitch(hls.levels[onScreen]);
    });
    hls.on(Hls.Events.AUDIO_TRACKS_UPDATED, paintAudioMenu);
    hls.on(Hls.Events.AUDIO_TRACK_SWITCHED, paintAudioMenu);
    hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, paintCaptionsMenu);
    hls.on(Hls.Events.SUBTITLE_TRACK_SWITCH, () => { paintCaptionsMenu(); drawCues(); });
  }

  function nativeReady() { // Safari's own HLS: its tracks, or ours from the JSON
    quality.wrapper.hidden = true;
    paintAudioMenu();
    if (!Array.from(media.textTracks).some(textKinds) && video.subtitles?.length) addJsonSubtitles();
    else paintCaptionsMenu();
  }

  return {
    captions, audio, quality, cues, attach, nativeReady, toggleCaptions,
    shown: () => hls?.levels[onScreen] || null,
    stop: () => clearInterval(cueTimer),
  };
}
