// The player: hls.js (vendored) under controls of our own — seek bar with storyboard previews and
// chapter marks, skip ±10 s, volume, captions, audio language, an honest quality label, full screen and
// keyboard shortcuts — resuming at watch_position, saving progress and reporting playback sessions.
import { get, put } from "./api.js";
import { observePlayback, playbackSession } from "./playback.js";
import { clock, icon, spokenTime } from "./player-controls.js";
import { trackMenus } from "./player-tracks.js";
import { loadStoryboard, tileAt } from "./storyboard.js";

const SAVE_EVERY_MS = 5000;
const SKIP_S = 10;
const ARROW_S = 5;
const IDLE_MS = 2500;
const AV1_PROBE = 'video/mp4; codecs="av01.0.05M.08"';
const VOLUME_KEY = "videoflix.volume";

// A browser that decodes AV1 prefers it; one that cannot never sees it (hls.js drops levels whose
// CODECS MediaSource refuses).
export const canDecodeAv1 = () => Boolean(window.MediaSource?.isTypeSupported?.(AV1_PROBE));

// A level as playback reports name it: {rendition: "720p", codec: "avc1.64001f", bitrate}.
function reported(level) {
  if (!level) return { rendition: null, codec: null, bitrate: null };
  return {
    rendition: level.height ? `${level.height}p` : null,
    codec: level.videoCodec || null,
    bitrate: Number.isFinite(level.bitrate) ? Math.round(level.bitrate) : null,
  };
}

const TYPING = "textarea, select, [contenteditable=''], [contenteditable='true'], input:not([type=range]):not([type=checkbox]):not([type=button])";

export async function showPlayer(id, { render, el, fail, onLeave }) {
  const video = await get(`/api/videos/${encodeURIComponent(id)}/`);
  const media = el("video", { id: "player", playsinline: true, preload: "auto", tabindex: "-1" });
  const saved = el("span", { class: "muted", id: "saved", "aria-live": "off" });
  const back = el("a", { href: "#/", class: "vp-back" }, "← Back to the catalogue");
  if (!video.hls_url) {
    render(el("div", { class: "player" }, el("h1", {}, video.title),
      el("p", { class: "status" }, `Not playable yet (${video.status}).`), back));
    return;
  }

  // ---- the parts -------------------------------------------------------------------------------
  const chapters = (video.chapters || []).filter((c) => Number.isFinite(c.start)).sort((a, b) => a.start - b.start);
  const button = (cls, name, iconName, onclick) =>
    el("button", { type: "button", class: `vp-button ${cls}`, "aria-label": name, title: name, onclick }, icon(iconName));
  const play = button("vp-play", "Play (k)", "play", () => toggle());
  const rewind = button("vp-rewind", `Back ${SKIP_S} seconds (j)`, "back", () => skip(-SKIP_S));
  const forward = button("vp-forward", `Forward ${SKIP_S} seconds (l)`, "forward", () => skip(SKIP_S));
  const mute = button("vp-mute", "Mute (m)", "volume", () => { media.muted = !media.muted; });
  const volume = el("input", { type: "range", class: "vp-volume", min: "0", max: "1", step: "0.05", "aria-label": "Volume" });
  const time = el("span", { class: "vp-time vp-time-bar", "aria-hidden": "true" }, "0:00 / 0:00");
  const fullscreen = button("vp-fullscreen", "Full screen (f)", "enter", () => toggleFullscreen());
  const tracks = trackMenus({
    el, media, video, flash,
    mark: (key, value) => { box.dataset[key] = value; },
    onSwitch: (level) => session.emit("switch", reported(level)),
  });
  const { captions, audio, quality } = tracks;

  const buffered = el("div", { class: "vp-buffered" });
  const played = el("div", { class: "vp-played" });
  const knob = el("div", { class: "vp-knob" });
  const marks = el("div", { class: "vp-marks" });
  const tile = el("div", { class: "vp-tile", id: "storyboard-tile", hidden: true });
  const previewChapter = el("div", { class: "vp-preview-chapter" });
  const previewTime = el("div", { class: "vp-preview-time" });
  const preview = el("div", { class: "vp-preview", id: "seek-preview", hidden: true }, tile, previewChapter, previewTime);
  const seek = el("div", {
    class: "vp-seek", id: "seek", role: "slider", tabindex: "0", "aria-label": "Seek",
    "aria-valuemin": "0", "aria-valuemax": "0", "aria-valuenow": "0", "aria-valuetext": "0 seconds",
  }, el("div", { class: "vp-rail" }, buffered, played, marks), knob, preview);
  const osd = el("div", { class: "vp-osd", role: "status", "aria-live": "polite" });
  const spinner = el("div", { class: "vp-spinner", hidden: true, "aria-hidden": "true" });
  const bigPlay = el("button", { type: "button", class: "vp-big-play", "aria-label": "Play", hidden: true }, icon("play"));
  bigPlay.addEventListener("click", () => toggle());
  const timeSmall = el("span", { class: "vp-time vp-time-small", "aria-hidden": "true" }, "0:00 / 0:00");
  const chrome = el("div", { class: "vp-chrome" }, el("div", { class: "vp-seek-row" }, seek, timeSmall),
    el("div", { class: "vp-bar" },
      el("div", { class: "vp-group" }, play, rewind, forward, el("div", { class: "vp-sound" }, mute, volume), time),
      el("div", { class: "vp-group" }, captions.wrapper, audio.wrapper, quality.wrapper, fullscreen)));
  const box = el("div", { class: "vp paused", id: "vp", role: "region", "aria-label": `Video player: ${video.title}` },
    el("div", { class: "vp-stage" }, media, tracks.cues, spinner, bigPlay, osd), chrome);
  const chapterList = chapters.length ? el("ol", { class: "vp-chapters", "aria-label": "Chapters" },
    ...chapters.map((c) => el("li", {}, el("button", { type: "button", class: "plain", onclick: () => seekTo(c.start) },
      el("span", { class: "muted" }, clock(c.start)), ` ${c.title}`)))) : null;
  render(el("div", { class: "player" }, el("h1", {}, video.title), box,
    el("div", { class: "vp-under" }, saved, back),
    video.description ? el("p", { class: "vp-description" }, video.description) : null, chapterList));

  // ---- time, seeking ----------------------------------------------------------------------------
  const known = Number(video.duration) || 0;
  // The title's whole length: a growing (processing) video's media duration is what is there so far.
  const total = () => Math.max(Number.isFinite(media.duration) ? media.duration : 0, known);
  const seekableEnd = () => {
    const s = media.seekable;
    return s.length ? s.end(s.length - 1) : (Number.isFinite(media.duration) ? media.duration : 0);
  };
  const chapterAt = (t) => chapters.filter((c) => c.start <= t + 0.01).pop();
  const pct = (t) => `${Math.min(100, Math.max(0, (t / (total() || 1)) * 100)).toFixed(3)}%`;

  function seekTo(t) {
    const end = seekableEnd();
    media.currentTime = Math.max(0, Math.min(t, end ? end - 0.1 : t));
    paintTime();
  }
  function skip(delta) {
    seekTo(media.currentTime + delta);
    flash(`${delta > 0 ? "+" : "−"}${Math.abs(delta)} s`);
  }
  let scrubbing = null; // seconds while the pointer drags the knob
  function paintTime() {
    const now = scrubbing ?? media.currentTime;
    played.style.width = pct(now);
    knob.style.left = pct(now);
    let end = 0;
    for (let i = 0; i < media.buffered.length; i++) {
      if (media.buffered.start(i) <= media.currentTime + 0.5) end = Math.max(end, media.buffered.end(i));
    }
    buffered.style.width = pct(end);
    time.textContent = timeSmall.textContent = `${clock(now)} / ${clock(total())}`;
    seek.setAttribute("aria-valuemax", String(Math.round(total())));
    seek.setAttribute("aria-valuenow", String(Math.round(now)));
    const chapter = chapterAt(now);
    seek.setAttribute("aria-valuetext",
      `${spokenTime(now)} of ${spokenTime(total())}${chapter ? `, chapter: ${chapter.title}` : ""}`);
  }
  function paintMarks() {
    marks.replaceChildren(...chapters.filter((c) => c.start > 0 && c.start < total()).map((c) => {
      const mark = el("span", { class: "vp-mark", title: c.title });
      mark.style.left = pct(c.start);
      return mark;
    }));
  }
  paintMarks();
  media.addEventListener("durationchange", () => { paintMarks(); paintTime(); });
  media.addEventListener("timeupdate", paintTime);
  media.addEventListener("progress", paintTime);

  // ---- preview over the seek bar (hover and drag) -------------------------------------------------
  let tiles = [];
  loadStoryboard(video.storyboard_url).then((list) => { tiles = list; });
  const timeAtX = (clientX) => {
    const rail = seek.getBoundingClientRect();
    return Math.min(1, Math.max(0, (clientX - rail.left) / (rail.width || 1))) * total();
  };
  function showPreview(clientX) {
    const t = timeAtX(clientX);
    const cue = tileAt(tiles, t);
    tile.hidden = !cue;
    if (cue) {
      tile.style.backgroundImage = `url("${cue.src}")`;
      tile.style.backgroundPosition = `${-cue.x}px ${-cue.y}px`;
      tile.style.width = `${cue.w}px`;
      tile.style.height = `${cue.h}px`;
      tile.dataset.src = cue.src;
      tile.dataset.xywh = `${cue.x},${cue.y},${cue.w},${cue.h}`;
    }
    const chapter = chapterAt(t);
    previewChapter.textContent = chapter ? chapter.title : "";
    previewChapter.hidden = !chapter;
    previewTime.textContent = clock(t);
    preview.dataset.time = t.toFixed(3);
    preview.hidden = false;
    const rail = seek.getBoundingClientRect();
    const width = preview.offsetWidth;
    const left = Math.min(Math.max(clientX - rail.left - width / 2, 0), Math.max(rail.width - width, 0));
    preview.style.left = `${left}px`;
  }
  seek.addEventListener("pointermove", (event) => {
    showPreview(event.clientX);
    if (scrubbing !== null) { scrubbing = timeAtX(event.clientX); paintTime(); }
  });
  seek.addEventListener("pointerleave", () => { if (scrubbing === null) preview.hidden = true; });
  seek.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    seek.setPointerCapture(event.pointerId);
    scrubbing = timeAtX(event.clientX);
    box.classList.add("scrubbing");
    showPreview(event.clientX);
    paintTime();
  });
  const endScrub = (event) => {
    if (scrubbing === null) return;
    const t = timeAtX(event.clientX);
    scrubbing = null;
    box.classList.remove("scrubbing");
    if (event.pointerType !== "mouse") preview.hidden = true;
    seekTo(t);
  };
  seek.addEventListener("pointerup", endScrub);
  seek.addEventListener("pointercancel", () => { scrubbing = null; preview.hidden = true; paintTime(); });
  seek.addEventListener("keydown", (event) => {
    const to = { Home: 0, End: total(), PageUp: media.currentTime + total() / 10, PageDown: media.currentTime - total() / 10 }[event.key];
    if (to === undefined) return;
    event.preventDefault();
    seekTo(to);
  });

  // ---- play state, volume, full screen ---------------------------------------------------------
  let wantedAt = performance.now(); // when the viewer asked to play: startup time counts from here
  function toggle() {
    if (media.paused || media.ended) {
      wantedAt = performance.now();
      media.play().catch(() => {});
    } else {
      media.pause();
    }
  }
  function paintPlay() {
    const paused = media.paused;
    box.classList.toggle("paused", paused);
    play.replaceChildren(icon(paused ? "play" : "pause"));
    play.setAttribute("aria-label", paused ? "Play (k)" : "Pause (k)");
    play.title = play.getAttribute("aria-label");
  }
  media.addEventListener("play", paintPlay);
  media.addEventListener("pause", paintPlay);
  media.addEventListener("playing", () => { bigPlay.hidden = true; spinner.hidden = true; });
  media.addEventListener("waiting", () => { spinner.hidden = false; });
  media.addEventListener("canplay", () => { spinner.hidden = true; });
  media.addEventListener("click", () => toggle());
  media.addEventListener("dblclick", () => toggleFullscreen());

  const storedVolume = Number(localStorage.getItem(VOLUME_KEY));
  if (storedVolume >= 0 && storedVolume <= 1 && localStorage.getItem(VOLUME_KEY) !== null) media.volume = storedVolume;
  function paintVolume() {
    const silent = media.muted || media.volume === 0;
    mute.replaceChildren(icon(silent ? "muted" : "volume"));
    mute.setAttribute("aria-label", silent ? "Unmute (m)" : "Mute (m)");
    mute.title = mute.getAttribute("aria-label");
    volume.value = String(media.muted ? 0 : media.volume);
    volume.setAttribute("aria-valuetext", `${Math.round((media.muted ? 0 : media.volume) * 100)} %`);
  }
  volume.addEventListener("input", () => {
    media.volume = Number(volume.value);
    media.muted = media.volume === 0;
    localStorage.setItem(VOLUME_KEY, String(media.volume));
  });
  media.addEventListener("volumechange", paintVolume);
  paintVolume();

  function toggleFullscreen() {
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else (box.requestFullscreen?.() || Promise.reject()).catch(() => media.webkitEnterFullscreen?.());
  }
  const onFullscreen = () => {
    const on = document.fullscreenElement === box;
    box.classList.toggle("fullscreen", on);
    fullscreen.replaceChildren(icon(on ? "leave" : "enter"));
    fullscreen.setAttribute("aria-label", on ? "Exit full screen (f)" : "Full screen (f)");
    fullscreen.title = fullscreen.getAttribute("aria-label");
  };
  document.addEventListener("fullscreenchange", onFullscreen);

  // Controls fade while the picture plays untouched; any pointer move, key or focus brings them back.
  let idleTimer = 0;
  function wake() {
    box.classList.remove("idle");
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => {
      const busy = box.querySelector(".vp-menu:not([hidden])") || chrome.contains(document.activeElement) || scrubbing !== null;
      if (!media.paused && !busy) box.classList.add("idle");
    }, IDLE_MS);
  }
  box.addEventListener("pointermove", wake);
  box.addEventListener("focusin", wake);
  media.addEventListener("play", wake);
  let osdTimer = 0;
  function flash(text) {
    osd.textContent = text;
    osd.classList.add("on");
    clearTimeout(osdTimer);
    osdTimer = setTimeout(() => osd.classList.remove("on"), 700);
    wake();
  }

  // ---- keyboard ----------------------------------------------------------------------------------
  function onKey(event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || !box.isConnected) return;
    const target = event.target instanceof Element ? event.target : document.body;
    if (target.closest(TYPING)) return;
    if (target.matches("input[type=range]") && /^(Arrow|Home|End|Page)/.test(event.key)) return;
    const onButton = target.closest("button, a, [role=menuitemradio]");
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const actions = {
      " ": () => toggle(), k: () => toggle(),
      ArrowLeft: () => skip(-ARROW_S), ArrowRight: () => skip(ARROW_S),
      j: () => skip(-SKIP_S), l: () => skip(SKIP_S),
      f: () => toggleFullscreen(), m: () => { media.muted = !media.muted; flash(media.muted ? "Muted" : "Sound on"); },
      c: () => tracks.toggleCaptions(),
    };
    if (!actions[key] || (key === " " && onButton) || (key.startsWith("Arrow") && target.closest(".vp-menu"))) return;
    event.preventDefault();
    actions[key]();
  }
  document.addEventListener("keydown", onKey);

  // ---- the stream --------------------------------------------------------------------------------
  const duration = known;
  const resumeAt = video.watch_position > 0 && (!duration || video.watch_position < duration - 3) ? video.watch_position : 0;
  let hls = null;
  const session = playbackSession(id, {
    target: box,
    heartbeat: () => (media.paused ? null : {
      position: Math.round(media.currentTime * 10) / 10,
      ...reported(tracks.shown()),
    }),
  });
  const stopObserving = observePlayback(media, session, () => wantedAt);

  if (window.Hls && Hls.isSupported()) {
    const config = {
      // 0 as well: a growing (processing) video's EVENT playlist starts at the beginning, not the live edge
      startPosition: resumeAt,
      subtitleDisplay: false, // selected captions are "hidden" tracks that the player draws itself
      backBufferLength: 90,
    };
    if (video.status !== "ready") {
      // A growing ladder's playlists are EVENT playlists, which hls.js treats as live. startPosition
      // starts them at 0; should hls.js fall back to its "live sync position" (it resets a live start
      // when the first level switch comes before enough is buffered), that is the playlist's start too.
      Object.assign(config, { liveSyncDuration: 1e6, liveMaxLatencyDuration: 2e6 });
    }
    if (canDecodeAv1()) config.videoPreference = { videoCodec: "av01" };
    hls = new Hls(config);
    tracks.attach(hls);
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      media.play().catch(() => { bigPlay.hidden = false; paintPlay(); }); // a browser may want a click first
    });
    let mediaRecoveries = 0;
    let reported = 0;
    hls.on(Hls.Events.ERROR, (_e, data) => {
      if (data.fatal || reported < 20) {
        reported += 1;
        session.emit("error", { code: String(data.details || data.type).slice(0, 64), detail: data.fatal ? "fatal" : "recovered" });
      }
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR && mediaRecoveries++ < 2) hls.recoverMediaError();
      else fail(`The video cannot be played (${data.details}).`);
    });
    hls.loadSource(video.hls_url);
    hls.attachMedia(media);
  } else if (media.canPlayType("application/vnd.apple.mpegurl")) {
    // Safari plays HLS itself and picks the quality on its own; its tracks show in our menus.
    media.src = video.hls_url;
    media.addEventListener("loadedmetadata", () => {
      if (resumeAt) media.currentTime = resumeAt;
      tracks.nativeReady();
      media.play().catch(() => { bigPlay.hidden = false; });
    }, { once: true });
  } else {
    fail("This browser cannot play HLS.");
    return;
  }
  paintPlay();
  paintTime();

  // ---- progress ----------------------------------------------------------------------------------
  let lastSaved = resumeAt;
  async function save() {
    const position = Math.round(media.currentTime * 10) / 10;
    if (!position || Math.abs(position - lastSaved) < 0.5) return;
    lastSaved = position;
    try {
      await put(`/api/videos/${encodeURIComponent(id)}/progress/`, { position });
      saved.textContent = `Saved at ${clock(position)}`;
      saved.dataset.position = String(position);
    } catch (err) {
      fail(err);
    }
  }
  const timer = setInterval(() => { if (!media.paused) save(); }, SAVE_EVERY_MS);
  media.addEventListener("pause", save);
  const onHide = () => save();
  window.addEventListener("pagehide", onHide);
  onLeave(() => {
    clearInterval(timer);
    clearTimeout(idleTimer);
    tracks.stop();
    save();
    stopObserving();
    session.close();
    window.removeEventListener("pagehide", onHide);
    document.removeEventListener("keydown", onKey);
    document.removeEventListener("fullscreenchange", onFullscreen);
    if (document.fullscreenElement === box) document.exitFullscreen().catch(() => {});
    if (hls) hls.destroy();
  });
}
