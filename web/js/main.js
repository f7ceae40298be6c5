// The Videoflix reference web app: hash routes for the views, the mailed-link paths handled on load.
import { ApiError, get, post, setToken, token } from "./api.js";
import { showPlayer } from "./player.js";
import { showUpload } from "./upload.js";

const view = document.getElementById("view");
const nav = document.getElementById("nav");
const notice = document.getElementById("notice");
let me = null; // {id, email, is_staff, ...} of the logged-in user
let leaving = null; // what the current view must stop (timers, players) when another one opens

export function say(text, ok = false) {
  notice.textContent = text;
  notice.classList.toggle("ok", ok);
  notice.hidden = !text;
}

export function fail(err) {
  say(err instanceof ApiError ? err.message : String(err?.message || err));
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined));
  return node;
}

// Set through the CSSOM: the Content-Security-Policy (style-src 'self') refuses style attributes.
function watchedBar(fraction) {
  const bar = el("span");
  bar.style.width = `${(fraction * 100).toFixed(1)}%`;
  return bar;
}

function render(...nodes) {
  if (leaving) leaving();
  leaving = null;
  view.replaceChildren(...nodes);
}

// Open a view with a message that survives the navigation.
let flash = null;
export function go(hash, text = "", ok = false) {
  flash = [text, ok];
  if (location.hash === hash) {
    say(text, ok);
    flash = null;
    route();
  } else {
    location.hash = hash;
  }
}

export function onLeave(stop) {
  leaving = stop;
}

function renderNav() {
  const links = [];
  if (me) {
    links.push(el("a", { href: "#/" }, "Browse"));
    if (me.is_staff) links.push(el("a", { href: "#/upload" }, "Upload"));
    links.push(el("span", { class: "who" }, me.email));
    links.push(el("button", { class: "plain", type: "button", onclick: logout }, "Log out"));
  } else {
    links.push(el("a", { href: "#/login" }, "Log in"), el("a", { href: "#/signup" }, "Sign up"));
  }
  nav.replaceChildren(...links);
}

function form(title, fields, submitText, onSubmit, ...extra) {
  const button = el("button", { type: "submit" }, submitText);
  const node = el("form", { class: "card", novalidate: true }, el("h1", {}, title), ...fields, button, ...extra);
  node.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      await onSubmit(Object.fromEntries(new FormData(node)));
    } catch (err) {
      fail(err);
    } finally {
      button.disabled = false;
    }
  });
  return node;
}

const field = (label, name, type = "text", attrs = {}) =>
  el("label", {}, label, el("input", { name, type, ...attrs }));

async function loadMe() {
  me = null;
  if (token()) {
    try {
      me = await get("/api/accounts/users/me/");
    } catch (err) {
      if (err.status === 401) setToken(null);
      else throw err;
    }
  }
  renderNav();
}

async function logout() {
  try {
    await post("/api/accounts/logout/");
  } catch (err) {
    if (err.status !== 401) fail(err);
  }
  setToken(null);
  me = null;
  renderNav();
  go("#/login", "You are logged out.", true);
}

function showLogin() {
  render(
    form(
      "Log in",
      [field("E-mail", "email", "email", { autocomplete: "username", required: true }),
        field("Password", "password", "password", { autocomplete: "current-password", required: true })],
      "Log in",
      async ({ email, password }) => {
        const reply = await post("/api/accounts/login/", { email, password });
        setToken(reply.token);
        await loadMe();
        go("#/");
      },
      el("p", { class: "muted" }, "New here? ", el("a", { href: "#/signup" }, "Sign up")),
    ),
  );
}

function codeFrom(text) {
  // A pasted link (…/signup/verify?code=…) or the bare code.
  const value = text.trim();
  try {
    return new URL(value).searchParams.get("code") || value;
  } catch {
    const match = value.match(/[?&]code=([^&\s]+)/);
    return match ? decodeURIComponent(match[1]) : value;
  }
}

function verifyBox() {
  return form(
    "Verify your address",
    [field("Link or code from the mail", "code", "text", { required: true })],
    "Verify",
    async ({ code }) => verifySignup(codeFrom(code)),
  );
}

function showSignup() {
  render(
    form(
      "Sign up",
      [field("E-mail", "email", "email", { autocomplete: "username", required: true }),
        field("Password", "password", "password", { autocomplete: "new-password", required: true }),
        field("First name", "first_name", "text", { autocomplete: "given-name" }),
        field("Last name", "last_name", "text", { autocomplete: "family-name" })],
      "Sign up",
      async (body) => {
        const reply = await post("/api/accounts/signup/", body);
        say(`We sent a link to ${reply.email}. Open it, or paste it below.`, true);
        render(verifyBox());
      },
      el("p", { class: "muted" }, "Have an account? ", el("a", { href: "#/login" }, "Log in")),
    ),
  );
}

async function verifySignup(code) {
  try {
    await get(`/api/accounts/signup/verify/?code=${encodeURIComponent(code)}`);
    go("#/login", "Email address verified. You can log in now.", true);
  } catch (err) {
    fail(err);
    render(verifyBox());
  }
}

function showResetPassword(code) {
  render(
    form(
      "Choose a new password",
      [field("New password", "password", "password", { autocomplete: "new-password", required: true })],
      "Save password",
      async ({ password }) => {
        await post("/api/accounts/password/reset/verified/", { code, password });
        go("#/login", "Password reset. Log in with the new one.", true);
      },
    ),
  );
}

async function verifyEmailChange(code) {
  try {
    const reply = await get(`/api/accounts/email/change/verify/?code=${encodeURIComponent(code)}`);
    go(me ? "#/" : "#/login", reply.success, true);
  } catch (err) {
    go(me ? "#/" : "#/login", err.message);
  }
}

function tile(video, categoryName) {
  const fraction = video.duration ? Math.min(1, video.watch_position / video.duration) : 0;
  return el(
    "a",
    { class: "tile", href: `#/video/${video.id}`, "data-video": video.id, title: video.description || video.title },
    video.thumbnail_url
      ? el("img", { src: video.thumbnail_url, alt: "", loading: "lazy" })
      : el("div", { class: "noimg" }),
    fraction > 0 ? el("div", { class: "watched" }, watchedBar(fraction)) : null,
    el("div", { class: "title" }, video.title),
    categoryName ? el("div", { class: "muted tile-category" }, categoryName) : null,
  );
}

function row(title, videos, id) {
  return el("section", { class: "row", id }, el("h2", {}, title), el("div", { class: "cards" }, videos.map((v) => tile(v))));
}

async function showCatalogue() {
  render(el("p", { class: "muted" }, "Loading…"));
  const [categories, videos, started] = await Promise.all([
    get("/api/categories/"),
    get("/api/videos/"),
    get("/api/videos/continue/"),
  ]);
  const rows = [];
  if (started.length) rows.push(row("Continue watching", started, "continue"));
  for (const category of categories) {
    const inside = videos.filter((v) => v.category === category.id);
    if (inside.length) rows.push(row(category.name, inside, `category-${category.slug}`));
  }
  const known = new Set(categories.map((c) => c.id));
  const other = videos.filter((v) => !known.has(v.category));
  if (other.length) rows.push(row(categories.length ? "More videos" : "Videos", other, "other"));
  if (!videos.length) rows.push(el("p", { class: "muted" }, "No videos yet."));
  render(el("div", { id: "catalogue" }, ...rows));
}

async function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  if (!me && !["/login", "/signup", "/verify"].includes(hash)) {
    go("#/login");
    return;
  }
  try {
    if (hash === "/login") showLogin();
    else if (hash === "/signup") showSignup();
    else if (hash === "/verify") render(verifyBox());
    else if (hash === "/upload") await showUpload({ render, el, say, fail, onLeave, me });
    else if (hash.startsWith("/video/")) await showPlayer(decodeURIComponent(hash.slice(7)), { render, el, say, fail, onLeave });
    else await showCatalogue();
  } catch (err) {
    if (err.status === 401) {
      setToken(null);
      await loadMe();
      go("#/login", err.message);
      return;
    }
    fail(err);
  }
}

async function start() {
  // The mails link to FRONTEND_URL + a path + ?code=: this page is served there too.
  const code = new URLSearchParams(location.search).get("code");
  const path = location.pathname.replace(/\/$/, "");
  await loadMe().catch(fail);
  window.addEventListener("hashchange", () => {
    say(...(flash || [""]));
    flash = null;
    route();
  });
  if (code && path.endsWith("/verify")) {
    history.replaceState(null, "", "/");
    if (path.includes("password")) return showResetPassword(code);
    if (path.includes("email")) return verifyEmailChange(code);
    return verifySignup(code);
  }
  await route();
}

start();
