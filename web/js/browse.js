// Browsing: the home page (a hero and rows that scroll sideways), the details page, search results.
import { ApiError, del, get, put } from "./api.js";
import { clock, el, fail, go, optional, render, say, session, setWidth } from "./ui.js";

const enc = encodeURIComponent;

function statusBadge(video) {
  if (video.status === "ready") return null;
  if (video.status === "failed") return el("span", { class: "badge failed" }, "Failed");
  const progress = Number(video.transcode_progress) || 0;
  const text = video.status === "pending" ? "Waiting" : `Processing ${Math.round(progress)} %`;
  return el("span", { class: "badge processing", "data-status": video.status }, text);
}

function poster(video, eager = false) {
  return video.thumbnail_url
    ? el("img", { src: video.thumbnail_url, alt: "", loading: eager ? "eager" : "lazy", decoding: "async" })
    : el("div", { class: "noimg", "aria-hidden": "true" }, (video.title || "?").slice(0, 1));
}

export function tile(video) {
  const fraction = video.duration ? Math.min(1, (video.watch_position || 0) / video.duration) : 0;
  const duration = video.duration ? clock(video.duration) : "";
  return el("a", {
    class: "tile", href: `#/title/${enc(video.id)}`, "data-video": video.id, "data-status": video.status,
    "aria-label": `${video.title}${duration ? `, ${duration}` : ""}${video.status !== "ready" ? `, ${video.status}` : ""}`,
  },
  el("div", { class: "poster" },
    poster(video),
    duration ? el("span", { class: "duration" }, duration) : null,
    statusBadge(video),
    fraction > 0 ? el("div", { class: "watched" }, setWidth(el("span"), fraction)) : null),
  el("div", { class: "tile-title", title: video.title }, video.title));
}

// A row: a heading and a strip of equal tiles that scrolls sideways (wheel, touch, arrow keys once
// focused, or the two buttons).
export function row(title, videos, id) {
  const strip = el("div", { class: "cards", tabindex: "0", role: "group", "aria-label": title },
    videos.map((v) => tile(v)));
  const scroll = (direction) => strip.scrollBy({ left: direction * strip.clientWidth * 0.9, behavior: "smooth" });
  const buttons = el("div", { class: "row-buttons" },
    el("button", { type: "button", class: "icon", "aria-label": `Scroll ${title} left`, onclick: () => scroll(-1) }, "‹"),
    el("button", { type: "button", class: "icon", "aria-label": `Scroll ${title} right`, onclick: () => scroll(1) }, "›"));
  // The buttons only where there is something to scroll to.
  new ResizeObserver(() => { buttons.hidden = strip.scrollWidth <= strip.clientWidth + 1; }).observe(strip);
  return el("section", { class: "row", id, "aria-labelledby": `${id}-title` },
    el("div", { class: "row-head" },
      el("h2", { id: `${id}-title` }, title),
      buttons),
    strip);
}

function playLabel(video) {
  return video.watch_position > 1 && (!video.duration || video.watch_position < video.duration - 3)
    ? `Resume from ${clock(video.watch_position)}` : "Play";
}

function hero(video, categoryName) {
  return el("section", { class: "hero", id: "hero", "aria-label": "Featured" },
    video.thumbnail_url ? el("img", { class: "hero-img", src: video.thumbnail_url, alt: "" }) : null,
    el("div", { class: "hero-shade" }),
    el("div", { class: "hero-text" },
      el("p", { class: "eyebrow" }, video.views ? "Most popular" : "New on Videoflix"),
      el("h1", {}, video.title),
      el("p", { class: "meta" }, [categoryName, video.duration ? clock(video.duration) : null].filter(Boolean).join(" · ")),
      video.description ? el("p", { class: "hero-desc" }, video.description) : null,
      el("div", { class: "actions" },
        video.playable !== false && video.hls_url
          ? el("a", { class: "button", href: `#/video/${enc(video.id)}` }, "▶ ", playLabel(video)) : null,
        el("a", { class: "button ghost", href: `#/title/${enc(video.id)}` }, "More info"))));
}

export async function showHome() {
  render(el("p", { class: "muted loading" }, "Loading…"));
  const [categories, videos, started, mylist, popular] = await Promise.all([
    get("/api/categories/"),
    get("/api/videos/"),
    optional(get("/api/videos/continue/")),
    optional(get("/api/videos/mylist/")),
    // Without the popular ordering the server answers newest first: no `views`, no row.
    optional(get("/api/videos/?ordering=popular")),
  ]);
  const names = new Map(categories.map((c) => [c.id, c.name]));
  const ranked = (popular || []).filter((v) => typeof v.views === "number" && v.views > 0);
  const watchable = videos.filter((v) => v.status === "ready");
  const featured = ranked[0] || watchable[0] || videos[0];
  const rows = [];
  if (started?.length) rows.push(row("Continue watching", started, "continue"));
  if (mylist?.length) rows.push(row("My list", mylist, "mylist"));
  if (ranked.length) rows.push(row("Popular", ranked, "popular"));
  if (videos.length > 1) rows.push(row("New on Videoflix", videos.slice(0, 20), "newest"));
  for (const category of categories) {
    const inside = videos.filter((v) => v.category === category.id);
    if (inside.length) rows.push(row(category.name, inside, `category-${category.slug}`));
  }
  const other = videos.filter((v) => !names.has(v.category));
  if (other.length) rows.push(row(categories.length ? "More videos" : "Videos", other, "other"));
  render(el("div", { id: "catalogue" },
    featured ? hero(featured, names.get(featured.category)) : null,
    videos.length ? el("div", { class: "rows" }, rows)
      : el("div", { class: "empty" }, el("h1", {}, "Nothing to watch yet"),
        el("p", { class: "muted" }, session.me?.is_staff
          ? "Upload the first video and it shows here once it is transcoded." : "Videos show here as soon as staff publish them."),
        session.me?.is_staff ? el("a", { class: "button", href: "#/upload" }, "Upload a video") : null)));
}

function chapters(video) {
  const list = Array.isArray(video.chapters) ? video.chapters : [];
  if (!list.length) return null;
  return el("section", { class: "chapters", "aria-labelledby": "chapters-title" },
    el("h2", { id: "chapters-title" }, "Chapters"),
    el("ol", {}, list.map((c) => el("li", {}, el("span", { class: "time" }, clock(c.start)), " ", c.title))));
}

async function myListButton(video) {
  const list = await optional(get("/api/videos/mylist/")).catch(() => null);
  if (list === null) return null; // no My list on this server yet
  let inList = list.some((v) => v.id === video.id);
  const button = el("button", { type: "button", class: "ghost", id: "mylist-toggle", "aria-pressed": String(inList) });
  const show = () => {
    button.textContent = inList ? "✓ In My list" : "+ My list";
    button.setAttribute("aria-pressed", String(inList));
    button.setAttribute("aria-label", inList ? "Remove from My list" : "Add to My list");
  };
  show();
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const path = `/api/videos/${enc(video.id)}/mylist/`;
      if (inList) await del(path); else await put(path, {});
      inList = !inList;
      show();
      say(inList ? `Added “${video.title}” to My list.` : `Removed “${video.title}” from My list.`, true);
    } catch (err) {
      fail(err);
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

export async function showDetails(id, staffTools) {
  const video = await get(`/api/videos/${enc(id)}/`);
  const categories = await get("/api/categories/");
  const category = categories.find((c) => c.id === video.category);
  const canPlay = Boolean(video.hls_url) && video.playable !== false;
  const facts = [
    category ? category.name : null,
    video.duration ? clock(video.duration) : null,
    video.height ? `${video.height}p` : null,
    typeof video.views === "number" ? `${video.views} view${video.views === 1 ? "" : "s"}` : null,
  ].filter(Boolean);
  const actions = el("div", { class: "actions" },
    canPlay ? el("a", { class: "button", id: "play", href: `#/video/${enc(video.id)}` }, "▶ ", playLabel(video))
      : el("p", { class: "status", id: "video-status", "data-status": video.status },
        video.status === "failed" ? `Failed: ${video.error || "the video could not be transcoded."}`
          : `Not playable yet (${video.status}${video.status === "processing" ? `, ${Math.round(video.transcode_progress)} %` : ""}).`),
    await myListButton(video));
  render(el("article", { class: "details", id: "details", "data-video": video.id },
    el("div", { class: "details-art" }, poster(video, true), el("div", { class: "hero-shade" })),
    el("div", { class: "details-text" },
      el("h1", {}, video.title),
      el("p", { class: "meta" }, facts.join(" · ")),
      actions,
      video.description ? el("p", { class: "description" }, video.description)
        : el("p", { class: "muted" }, "No description."),
      chapters(video),
      staffTools ? staffTools(video, categories) : null,
      el("a", { class: "back", href: "#/" }, "← Back to browse"))));
}

// Search: results for the words in the header's box (it drives this view while one types).
let asked = 0;
export async function showSearch(words) {
  const mine = ++asked;
  const q = words.trim();
  const box = document.getElementById("search");
  if (box && document.activeElement !== box) box.value = q;
  const results = el("div", { class: "grid", id: "search-results", "aria-live": "polite" });
  const heading = el("h1", { class: "page-title" }, q ? `Results for “${q}”` : "Search");
  if (!document.getElementById("search-view")) render(el("section", { id: "search-view" }, heading, results));
  else document.getElementById("search-view").replaceChildren(heading, results);
  if (!q) {
    results.append(el("p", { class: "muted" }, "Type a title or words from a description."));
    return;
  }
  try {
    const videos = await get(`/api/videos/?search=${enc(q)}`);
    if (mine !== asked) return; // a newer search answered or will
    results.replaceChildren(...(videos.length ? videos.map((v) => tile(v))
      : [el("p", { class: "muted", id: "no-results" }, `Nothing matches “${q}”.`)]));
  } catch (err) {
    if (mine === asked) {
      if (err instanceof ApiError && err.status === 400) results.replaceChildren(el("p", { class: "muted" }, err.message));
      else throw err;
    }
  }
}

export function goSearch(words) {
  if (words.trim()) go(`#/search?q=${enc(words.trim())}`);
  else go("#/");
}
