// Staff tools: categories, editing and deleting a video, the job queue, per-video stats.
import { ApiError, del, get, patch, post } from "./api.js";
import { clock, el, fail, field, form, go, onLeave, optional, render, say, svg } from "./ui.js";

const enc = encodeURIComponent;
const JOBS_POLL_MS = 3000;

// Categories: create, rename, delete (a category that videos use answers 409 with a sentence).
export async function showCategories() {
  const categories = await get("/api/categories/");
  const list = el("ul", { class: "manage", id: "category-list" }, categories.map((c) => categoryRow(c)));
  render(el("section", { class: "staff", id: "categories" },
    el("h1", { class: "page-title" }, "Categories"),
    form("New category",
      [field("Name", "name", "text", { required: true, maxlength: "100" }),
        field("Description", "description", "text", { maxlength: "2000" })],
      "Create category",
      async ({ name, description }, node) => {
        const made = await post("/api/categories/", { name: name.trim(), description });
        list.append(categoryRow(made));
        node.reset();
        say(`Category “${made.name}” created.`, true);
      }),
    categories.length ? null : el("p", { class: "muted" }, "No categories yet."),
    list));
}

function categoryRow(category) {
  const name = el("input", { type: "text", value: category.name, "aria-label": `Name of ${category.name}`, maxlength: "100" });
  const item = el("li", { "data-category": category.id });
  const rename = el("button", { type: "button", class: "ghost" }, "Rename");
  const remove = el("button", { type: "button", class: "danger" }, "Delete");
  rename.addEventListener("click", async () => {
    say("");
    try {
      const changed = await patch(`/api/categories/${enc(category.id)}/`, { name: name.value.trim() });
      say(`Renamed to “${changed.name}”.`, true);
      category.name = changed.name;
    } catch (err) { fail(err); }
  });
  remove.addEventListener("click", () => confirmThen(item, `Delete “${category.name}”?`, async () => {
    await del(`/api/categories/${enc(category.id)}/`);
    item.remove();
    say(`Category “${category.name}” deleted.`, true);
  }));
  item.append(name, rename, remove);
  return item;
}

// A two-step confirmation in the page (keyboard friendly, no window.confirm).
function confirmThen(host, question, action) {
  host.querySelector(".confirm")?.remove();
  const yes = el("button", { type: "button", class: "danger" }, "Yes, delete");
  const box = el("div", { class: "confirm", role: "alertdialog", "aria-label": question },
    el("span", {}, question), yes, el("button", { type: "button", class: "ghost", onclick: () => box.remove() }, "Cancel"));
  yes.addEventListener("click", async () => {
    yes.disabled = true;
    say("");
    try { await action(); box.remove(); } catch (err) { fail(err); yes.disabled = false; }
  });
  host.append(box);
  yes.focus();
}

// On the details page: edit the title, description and category; delete; stats; transcode again.
export function videoTools(video, categories) {
  const panel = el("section", { class: "staff-tools", "aria-labelledby": "staff-tools-title" },
    el("h2", { id: "staff-tools-title" }, "Staff"));
  const editor = form("", [
    field("Title", "title", "text", { required: true, value: video.title, maxlength: "200" }),
    el("label", {}, el("span", {}, "Description"), el("textarea", { name: "description", rows: "3" }, video.description || "")),
    el("label", {}, el("span", {}, "Category"),
      el("select", { name: "category" }, el("option", { value: "" }, "None"),
        categories.map((c) => el("option", { value: c.id, selected: c.id === video.category }, c.name)))),
  ], "Save changes", async ({ title, description, category }) => {
    const changed = await patch(`/api/videos/${enc(video.id)}/`, { title: title.trim(), description, category: category || null });
    go(`#/title/${enc(changed.id)}`, "Changes saved.", true);
  });
  editor.id = "edit-video";
  editor.hidden = true;
  const toggle = el("button", { type: "button", class: "ghost", "aria-expanded": "false", "aria-controls": "edit-video" }, "Edit");
  toggle.addEventListener("click", () => {
    editor.hidden = !editor.hidden;
    toggle.setAttribute("aria-expanded", String(!editor.hidden));
    if (!editor.hidden) editor.querySelector("input").focus();
  });
  const remove = el("button", { type: "button", class: "danger" }, "Delete");
  const buttons = el("div", { class: "actions" }, toggle,
    el("a", { class: "button ghost", href: `#/stats/${enc(video.id)}` }, "Stats"),
    el("button", {
      type: "button", class: "ghost",
      onclick: async () => {
        try {
          await post(`/api/videos/${enc(video.id)}/retranscode/`);
          go(`#/title/${enc(video.id)}`, "Queued for transcoding again.", true);
        } catch (err) { fail(err); }
      },
    }, "Transcode again"),
    remove);
  remove.addEventListener("click", () => confirmThen(buttons, `Delete “${video.title}” and its files?`, async () => {
    await del(`/api/videos/${enc(video.id)}/`);
    go("#/", `“${video.title}” was deleted.`, true);
  }));
  panel.append(buttons, editor);
  return panel;
}

// The job queue: newest first, filtered by state, with retry and cancel; refreshed while open.
const STATES = ["", "queued", "running", "done", "failed", "cancelled"];
export async function showJobs(state = "") {
  const filter = el("select", { id: "job-state", "aria-label": "Show jobs that are" },
    STATES.map((s) => el("option", { value: s, selected: s === state }, s ? s[0].toUpperCase() + s.slice(1) : "All")));
  const body = el("tbody");
  const count = el("p", { class: "muted", id: "job-count" });
  render(el("section", { class: "staff", id: "jobs" },
    el("div", { class: "page-head" }, el("h1", { class: "page-title" }, "Jobs"), el("label", { class: "inline" }, "Show ", filter)),
    count,
    el("div", { class: "table-wrap" }, el("table", { class: "jobs" },
      el("thead", {}, el("tr", {}, ["Type", "What", "State", "Attempts", "Queued", "Last error", ""].map((h) => el("th", { scope: "col" }, h)))),
      body))));
  filter.addEventListener("change", () => go(`#/jobs${filter.value ? `?state=${filter.value}` : ""}`));
  let timer = null;
  let left = false;
  onLeave(() => { left = true; clearTimeout(timer); });
  let titles = new Map();
  let shown = null; // what the table shows: redrawn only when it changes, so the focus stays put
  async function load() {
    try {
      const [page, videos] = await Promise.all([
        get(`/api/admin/jobs/?limit=100${state ? `&state=${enc(state)}` : ""}`),
        titles.size ? null : get("/api/videos/"),
      ]);
      if (videos) titles = new Map(videos.map((v) => [v.id, v.title]));
      count.textContent = `${page.count} job${page.count === 1 ? "" : "s"}`;
      const now = JSON.stringify(page.results.map((j) => [j.id, j.state, j.attempts, Math.round(j.progress || 0), j.last_error]));
      if (now !== shown) {
        shown = now;
        const focused = document.activeElement?.closest?.("tr[data-job]")?.dataset.job;
        body.replaceChildren(...page.results.map((job) => jobRow(job, titles, load)));
        if (!page.results.length) body.append(el("tr", {}, el("td", { colspan: "7", class: "muted" }, "No jobs.")));
        if (focused) body.querySelector(`tr[data-job="${CSS.escape(focused)}"] button, tr[data-job="${CSS.escape(focused)}"] a`)?.focus();
      }
    } catch (err) {
      fail(err);
    }
    clearTimeout(timer);
    if (!left) timer = setTimeout(load, JOBS_POLL_MS);
  }
  await load();
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString([], { dateStyle: "short", timeStyle: "short" }) : "—";
}

function jobRow(job, titles, reload) {
  const videoId = job.payload?.video_id;
  const what = videoId ? el("a", { href: `#/title/${enc(videoId)}` }, titles.get(videoId) || "a video")
    : (job.payload?.to ? "a mail" : "—");
  const act = async (verb) => {
    say("");
    try {
      await post(`/api/admin/jobs/${enc(job.id)}/${verb}/`);
      say(verb === "retry" ? "The job is queued again." : "The job is cancelled.", true);
      reload(true);
    } catch (err) { fail(err); }
  };
  const progress = job.state === "running" && job.progress ? ` ${Math.round(job.progress)} %` : "";
  return el("tr", { "data-job": job.id, "data-state": job.state },
    el("td", {}, job.type || "—"),
    el("td", {}, what),
    el("td", {}, el("span", { class: `state ${job.state}` }, `${job.state}${progress}`)),
    el("td", {}, `${job.attempts}${job.max_attempts ? ` / ${job.max_attempts}` : ""}`),
    el("td", { class: "when" }, when(job.queued_at)),
    el("td", { class: "error-text" }, job.last_error || ""),
    el("td", { class: "row-actions" },
      ["failed", "cancelled"].includes(job.state)
        ? el("button", { type: "button", class: "ghost", onclick: () => act("retry"), "aria-label": `Retry ${job.type} job` }, "Retry") : null,
      ["queued", "running"].includes(job.state)
        ? el("button", { type: "button", class: "ghost", onclick: () => act("cancel"), "aria-label": `Cancel ${job.type} job` }, "Cancel") : null));
}

// Per-video stats and a retention chart (hand-rolled SVG: no library, nothing inline the CSP refuses).
export async function showStats(id, days = 7) {
  const video = await get(`/api/videos/${enc(id)}/`);
  let stats;
  try {
    stats = await optional(get(`/api/videos/${enc(id)}/stats/?days=${days}`));
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    fail(err);
    stats = null;
  }
  const back = el("a", { class: "back", href: `#/title/${enc(id)}` }, `← Back to “${video.title}”`);
  if (!stats) {
    render(el("section", { class: "staff", id: "stats" }, el("h1", { class: "page-title" }, `Stats: ${video.title}`),
      el("p", { class: "muted" }, "This server does not collect playback stats yet."), back));
    return;
  }
  const number = (value, digits = 0) => (typeof value === "number" ? value.toFixed(digits) : "—");
  const ms = (value) => (typeof value === "number" ? `${Math.round(value)} ms` : "—");
  const cards = [
    ["Views", number(stats.views)],
    ["Unique viewers", number(stats.unique_viewers)],
    ["Watch time", typeof stats.watch_time_s === "number" ? clock(stats.watch_time_s) : "—"],
    ["Startup p50", ms(stats.startup_ms?.p50)],
    ["Startup p95", ms(stats.startup_ms?.p95)],
    ["Rebuffering", typeof stats.rebuffer_ratio === "number" ? `${(stats.rebuffer_ratio * 100).toFixed(2)} %` : "—"],
    ["Errors", Array.isArray(stats.errors)
      ? String(stats.errors.reduce((sum, e) => sum + (Number(e?.count) || 1), 0)) : number(stats.errors)],
  ];
  render(el("section", { class: "staff", id: "stats" },
    el("div", { class: "page-head" }, el("h1", { class: "page-title" }, `Stats: ${video.title}`),
      el("label", { class: "inline" }, "Last ",
        el("select", { id: "stats-days", onchange: (e) => showStats(id, Number(e.target.value)).catch(fail) },
          [1, 7, 30, 90].map((d) => el("option", { value: String(d), selected: d === days }, `${d} day${d === 1 ? "" : "s"}`))))),
    el("dl", { class: "stat-cards" }, cards.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v)))),
    el("h2", {}, "Audience retention"),
    retentionChart(retentionPoints(stats.retention), video.duration),
    renditionTable(stats.renditions),
    bytesTable(stats.bytes_by_codec),
    back));
}

// The retention curve as fractions 0..1 per bucket, whatever shape the numbers come in.
export function retentionPoints(retention) {
  const list = Array.isArray(retention) ? retention : Array.isArray(retention?.buckets) ? retention.buckets : [];
  const values = list.map((b) => (typeof b === "number" ? b : Number(b?.fraction ?? b?.share ?? b?.viewers ?? b?.value ?? 0)));
  const top = Math.max(1, ...values);
  return values.map((v) => (top > 1 ? v / top : v));
}

function retentionChart(points, duration) {
  const W = 900, H = 260, L = 48, R = 16, T = 12, B = 30;
  const w = W - L - R, h = H - T - B;
  const x = (i) => L + (points.length > 1 ? (i / (points.length - 1)) * w : 0);
  const y = (v) => T + (1 - v) * h;
  const grid = [0, 0.25, 0.5, 0.75, 1].map((v) => [
    svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "gridline" }),
    svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, `${Math.round(v * 100)} %`),
  ]);
  const ticks = duration ? [0, 0.5, 1].map((f) => svg("text", {
    x: L + f * w, y: H - 8, "text-anchor": f === 0 ? "start" : f === 1 ? "end" : "middle", class: "axis",
  }, clock(f * duration))) : [];
  const chart = svg("svg", {
    viewBox: `0 0 ${W} ${H}`, class: "chart", id: "retention-chart", role: "img",
    "aria-label": points.length
      ? `Audience retention: ${Math.round((points[0] || 0) * 100)} % at the start, ${Math.round((points.at(-1) || 0) * 100)} % at the end`
      : "No retention data yet",
  }, grid, ticks);
  if (points.length) {
    const line = points.map((v, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    chart.append(
      svg("path", { d: `${line} L${x(points.length - 1).toFixed(1)},${y(0)} L${x(0)},${y(0)} Z`, class: "area" }),
      svg("path", { d: line, class: "line" }),
      ...points.map((v, i) => svg("circle", { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 3, class: "dot" },
        svg("title", {}, `${Math.round(v * 100)} % still watching`))));
  } else {
    chart.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "axis" }, "No views yet"));
  }
  return el("figure", { class: "chart-box" }, chart);
}

function renditionTable(renditions) {
  const entries = Array.isArray(renditions) ? renditions.map((r) => [r.rendition || r.name || `${r.height}p`, r])
    : Object.entries(renditions || {});
  if (!entries.length) return null;
  const seconds = (r) => (typeof r === "number" ? r : Number(r?.seconds ?? r?.watch_time_s ?? 0));
  return el("div", { class: "table-wrap" }, el("table", { class: "jobs", id: "renditions" },
    el("caption", {}, "Seconds watched per rendition"),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Rendition"), el("th", { scope: "col" }, "Codec"), el("th", { scope: "col" }, "Seconds"))),
    el("tbody", {}, entries.map(([name, r]) => el("tr", {},
      el("td", {}, String(name)), el("td", {}, r?.codec || "—"), el("td", {}, seconds(r).toFixed(0)))))));
}

function bytesTable(rows) {
  if (!Array.isArray(rows) || !rows.length) return null;
  const mb = (bytes) => `${(Number(bytes || 0) / 1e6).toFixed(1)} MB`;
  return el("div", { class: "table-wrap" }, el("table", { class: "jobs", id: "bytes-by-codec" },
    el("caption", {}, "Bytes served by codec (estimated)"),
    el("thead", {}, el("tr", {}, ["Codec", "Seconds", "Bytes", "Per minute"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {},
      el("td", {}, r.codec || "—"), el("td", {}, Number(r.seconds || 0).toFixed(0)), el("td", {}, mb(r.bytes)),
      el("td", {}, r.seconds ? mb((r.bytes / r.seconds) * 60) : "—"))))));
}

// The staff overview: totals over a period and the most watched videos (GET /api/admin/stats/).
export async function showOverview(days = 7) {
  const stats = await optional(get(`/api/admin/stats/?days=${days}`));
  const head = el("div", { class: "page-head" }, el("h1", { class: "page-title" }, "Audience"),
    el("label", { class: "inline" }, "Last ",
      el("select", { id: "overview-days", onchange: (e) => showOverview(Number(e.target.value)).catch(fail) },
        [1, 7, 30, 90].map((d) => el("option", { value: String(d), selected: d === days }, `${d} day${d === 1 ? "" : "s"}`)))));
  if (!stats) {
    render(el("section", { class: "staff", id: "overview" }, head,
      el("p", { class: "muted" }, "This server does not collect playback stats yet.")));
    return;
  }
  const totals = stats.totals || {};
  const cards = [
    ["Views", totals.views ?? "—"], ["Watch time", typeof totals.watch_time_s === "number" ? clock(totals.watch_time_s) : "—"],
    ["Sessions", totals.sessions ?? "—"], ["Videos watched", totals.videos_watched ?? "—"],
  ];
  const top = Array.isArray(stats.top_videos) ? stats.top_videos : [];
  render(el("section", { class: "staff", id: "overview" }, head,
    el("dl", { class: "stat-cards" }, cards.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, String(v))))),
    el("div", { class: "table-wrap" }, el("table", { class: "jobs", id: "top-videos" },
      el("caption", {}, "Most watched"),
      el("thead", {}, el("tr", {}, ["Video", "Views", "Watch time", "All-time views", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, top.length ? top.map((v) => el("tr", {},
        el("td", {}, el("a", { href: `#/title/${enc(v.id)}` }, v.title || v.id)),
        el("td", {}, String(v.views ?? 0)),
        el("td", {}, clock(v.watch_time_s || 0)),
        el("td", {}, String(v.total_views ?? "—")),
        el("td", {}, el("a", { href: `#/stats/${enc(v.id)}`, "aria-label": `Stats of ${v.title}` }, "Stats"))))
        : el("tr", {}, el("td", { colspan: "5", class: "muted" }, "Nobody watched anything in this period.")))))));
}
