// Playback sessions (issue #21): the player's events, batched and sent to POST /api/videos/<id>/playback/
// as {session, events: [{seq, type, ...}]} every 10 s and when the page is hidden or left.
//
// Events (times in ms, positions in s):
//   start     {startup_ms}                      first frame after the viewer asked to play
//   heartbeat {position, rendition, codec, bitrate}   every 10 s while playing
//   rebuffer  {ms, position}                    a stall that was not a seek
//   switch    {rendition, codec, bitrate}       the picture on screen changed rendition
//   error     {code, detail}                    hls.js's error name; "fatal" or "recovered"
//   end       {position}
// with rendition "720p", codec as the master's CODECS names it ("avc1.64001f", "av01.0.05M.08").
// A 404 (the endpoint is not there yet) or 405 stops sending quietly; a network failure keeps the batch
// for the next try, within bounds. The server is idempotent by (session, seq), so a resend is harmless.
import { apiUrl, authHeaders } from "./api.js";

const FLUSH_EVERY_MS = 10_000;
const MAX_BATCH = 50; // keeps a keepalive body far below the browsers' 64 KB
const MAX_PENDING = 500;

function sessionId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function playbackSession(videoId, { heartbeat = () => null, target = null } = {}) {
  const url = apiUrl(`/api/videos/${encodeURIComponent(videoId)}/playback/`);
  const session = sessionId();
  let seq = 0;
  let pending = [];
  let stopped = false; // the server has no such endpoint: keep quiet
  let inFlight = false;

  function emit(type, fields = {}) {
    const event = { seq: ++seq, type, ...fields };
    if (target) target.dispatchEvent(new CustomEvent("videoflix:playback", { detail: { session, ...event } }));
    if (stopped) return event;
    pending.push(event);
    if (pending.length > MAX_PENDING) pending = pending.slice(-MAX_PENDING);
    return event;
  }

  async function flush({ leaving = false } = {}) {
    const beat = heartbeat();
    if (beat) emit("heartbeat", beat);
    if (stopped || inFlight || !pending.length) return;
    const events = pending.slice(0, MAX_BATCH);
    inFlight = !leaving;
    try {
      const response = await fetch(url, {
        method: "POST",
        keepalive: leaving, // outlives the page; a plain fetch can carry the token, sendBeacon cannot
        headers: { "Content-Type": "application/json", ...authHeaders() },
        body: JSON.stringify({ session, events }),
      });
      if (response.status === 404 || response.status === 405) {
        stopped = true;
        pending = [];
        return;
      }
      if (response.ok || (response.status >= 400 && response.status < 500 && response.status !== 429)) {
        pending = pending.filter((e) => !events.includes(e)); // sent, or refused for good
      }
    } catch {
      // offline or the page is going: the batch stays for the next flush
    } finally {
      inFlight = false;
    }
    if (!leaving && pending.length >= MAX_BATCH) flush();
  }

  const timer = setInterval(() => flush(), FLUSH_EVERY_MS);
  const onHide = () => flush({ leaving: true });
  window.addEventListener("pagehide", onHide);

  return {
    session,
    emit,
    flush,
    close() {
      clearInterval(timer);
      window.removeEventListener("pagehide", onHide);
      flush({ leaving: true });
    },
  };
}

// The media element's side of a session: startup time, stalls that were not seeks, the end.
// `wantedAt()` is when the viewer last asked to play (performance.now()). Returns a stop function.
export function observePlayback(media, session, wantedAt) {
  let started = false;
  let stalledAt = null;
  const position = () => Math.round(media.currentTime * 10) / 10;
  const on = {
    playing() {
      if (!started) {
        started = true;
        session.emit("start", { startup_ms: Math.round(performance.now() - wantedAt()) });
      }
      if (stalledAt !== null) {
        session.emit("rebuffer", { ms: Math.round(performance.now() - stalledAt), position: position() });
        stalledAt = null;
      }
    },
    waiting() {
      if (started && !media.seeking && stalledAt === null) stalledAt = performance.now();
    },
    seeking() {
      stalledAt = null; // waiting for a seek is the viewer's choice, not a rebuffer
    },
    ended() {
      session.emit("end", { position: position() });
    },
  };
  for (const [name, handler] of Object.entries(on)) media.addEventListener(name, handler);
  return () => {
    for (const [name, handler] of Object.entries(on)) media.removeEventListener(name, handler);
  };
}
