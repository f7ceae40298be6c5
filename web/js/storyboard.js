// Seek-bar previews: the storyboard WebVTT (cues `storyboard.jpg#xywh=x,y,w,h`, as transcode/storyboard.py
// writes it) parsed into tiles, and the tile for a time.

const TIMING = /^\s*((?:\d+:)?\d{1,2}:\d{2}(?:[.,]\d{1,3})?)\s+-->\s+((?:\d+:)?\d{1,2}:\d{2}(?:[.,]\d{1,3})?)/;

// "hh:mm:ss.ttt" or "mm:ss.ttt" in seconds.
export function vttSeconds(text) {
  const parts = text.replace(",", ".").split(":").map(Number);
  return parts.reduce((total, part) => total * 60 + part, 0);
}

// [{start, end, src, x, y, w, h}] from the VTT's text; `base` resolves the sheets' relative names.
export function parseStoryboard(text, base) {
  const tiles = [];
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  for (let i = 0; i < lines.length; i++) {
    const timing = TIMING.exec(lines[i]);
    if (!timing) continue;
    const payload = (lines[i + 1] || "").trim();
    const hash = payload.lastIndexOf("#xywh=");
    if (hash < 0) continue;
    const [x, y, w, h] = payload.slice(hash + 6).split(",").map(Number);
    if (![x, y, w, h].every(Number.isFinite)) continue;
    tiles.push({
      start: vttSeconds(timing[1]),
      end: vttSeconds(timing[2]),
      src: new URL(payload.slice(0, hash), base).href,
      x, y, w, h,
    });
  }
  return tiles;
}

// The tile shown at `seconds`: the cue that holds it, else the nearest one at either end.
export function tileAt(tiles, seconds) {
  if (!tiles.length) return null;
  let low = 0;
  let high = tiles.length - 1;
  while (low < high) { // the last cue starting at or before `seconds`
    const middle = (low + high + 1) >> 1;
    if (tiles[middle].start <= seconds) low = middle;
    else high = middle - 1;
  }
  return tiles[low];
}

// Fetch and parse; an empty list when there is none or it cannot be read (previews are a nicety).
export async function loadStoryboard(url) {
  if (!url) return [];
  try {
    const response = await fetch(url);
    if (!response.ok) return [];
    const base = new URL(url, location.href).href;
    const tiles = parseStoryboard(await response.text(), base);
    for (const src of new Set(tiles.map((t) => t.src))) new Image().src = src; // warm the sheets
    return tiles;
  } catch {
    return [];
  }
}
