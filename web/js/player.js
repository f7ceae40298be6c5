// The player: hls.js (vendored) with a quality menu, resuming at watch_position, saving progress.
import { get, put } from "./api.js";

const SAVE_EVERY_MS = 5000;

function label(level) {
  return level.height ? `${level.height}p` : `${Math.round(level.bitrate / 1000)} kbit/s`;
}

export async function showPlayer(id, { render, el, fail, onLeave }) {
  const video = await get(`/api/videos/${encodeURIComponent(id)}/`);
  const player = el("video", { controls: true, playsinline: true, preload: "auto", id: "player" });
  const quality = el("select", { id: "quality", "aria-label": "Quality", disabled: true },
    el("option", { value: "-1" }, "Auto"));
  const playing = el("span", { class: "muted", id: "playing-level" });
  const saved = el("span", { class: "muted", id: "saved" });
  render(
    el("div", { class: "player" },
      el("h1", {}, video.title),
      video.hls_url ? player : el("p", { class: "status" }, `Not playable yet (${video.status}).`),
      el("div", { class: "controls" }, el("label", {}, "Quality ", quality), playing, saved),
      video.description ? el("p", {}, video.description) : null,
      el("a", { href: "#/" }, "← Back to the catalogue")),
  );
  if (!video.hls_url) return;

  const duration = video.duration || 0;
  const resumeAt = video.watch_position > 0 && (!duration || video.watch_position < duration - 3)
    ? video.watch_position : 0;
  let lastSaved = resumeAt;
  let hls = null;

  async function save() {
    const position = Math.round(player.currentTime * 10) / 10;
    if (!position || Math.abs(position - lastSaved) < 0.5) return;
    lastSaved = position;
    try {
      await put(`/api/videos/${encodeURIComponent(id)}/progress/`, { position });
      saved.textContent = `Saved at ${Math.floor(position)} s`;
      saved.dataset.position = String(position);
    } catch (err) {
      fail(err);
    }
  }

  if (window.Hls && Hls.isSupported()) {
    hls = new Hls({ startPosition: resumeAt || -1 });
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      hls.levels.forEach((level, index) => quality.append(el("option", { value: String(index) }, label(level))));
      quality.disabled = hls.levels.length < 2;
      player.play().catch(() => {}); // a browser may want a click first
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_event, data) => {
      const level = hls.levels[data.level];
      playing.textContent = level ? `Playing ${label(level)}${hls.autoLevelEnabled ? " (auto)" : ""}` : "";
      playing.dataset.level = String(data.level);
    });
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (data.fatal) fail(`The video cannot be played (${data.details}).`);
    });
    quality.addEventListener("change", () => {
      hls.currentLevel = Number(quality.value); // -1: automatic
    });
    hls.loadSource(video.hls_url);
    hls.attachMedia(player);
  } else if (player.canPlayType("application/vnd.apple.mpegurl")) {
    // Safari plays HLS itself and picks the quality on its own.
    player.src = video.hls_url;
    player.addEventListener("loadedmetadata", () => {
      if (resumeAt) player.currentTime = resumeAt;
      player.play().catch(() => {});
    }, { once: true });
  } else {
    fail("This browser cannot play HLS.");
    return;
  }

  const timer = setInterval(() => { if (!player.paused) save(); }, SAVE_EVERY_MS);
  player.addEventListener("pause", save);
  const onHide = () => save();
  window.addEventListener("pagehide", onHide);
  onLeave(() => {
    clearInterval(timer);
    save();
    window.removeEventListener("pagehide", onHide);
    if (hls) hls.destroy();
  });
}
