// The Videoflix reference web app: hash routes for the views, the mailed-link paths handled on load.
// Views live in their own modules: browse.js, account.js, staff.js, upload.js (player.js: the player).
import { get, post, setToken, token } from "./api.js";
import {
  showForgot, showLogin, showProfile, showResetPassword, showSignup, verifyBox, verifyEmailChange, verifySignup,
} from "./account.js";
import { goSearch, showDetails, showHome, showSearch } from "./browse.js";
import { showPlayer } from "./player.js";
import { showCategories, showJobs, showOverview, showStats, videoTools } from "./staff.js";
import { el, fail, go, onLeave, render, say, session, takeFlash } from "./ui.js";
import { showUpload } from "./upload.js";

export { el, fail, go, onLeave, say } from "./ui.js";

const nav = document.getElementById("nav");
const searchBox = document.getElementById("search");
const searchForm = document.getElementById("search-form");
const PUBLIC = ["/login", "/signup", "/verify", "/forgot"];
const SEARCH_DEBOUNCE_MS = 250;

function link(href, text, attrs = {}) {
  const current = location.hash === href || (href !== "#/" && location.hash.startsWith(href));
  return el("a", { href, "aria-current": current ? "page" : null, ...attrs }, text);
}

function renderNav() {
  const links = [];
  const me = session.me;
  searchForm.hidden = !me;
  if (me) {
    links.push(link("#/", "Home"));
    if (me.is_staff) {
      links.push(link("#/upload", "Upload"), link("#/categories", "Categories"), link("#/jobs", "Jobs"),
        link("#/stats", "Stats"));
    }
    links.push(link("#/profile", "Account", { class: "who", title: me.email, "aria-label": `Account (${me.email})` }));
    links.push(el("button", { class: "plain", type: "button", onclick: logout }, "Log out"));
  } else {
    links.push(link("#/login", "Log in"), link("#/signup", "Sign up", { class: "button small" }));
  }
  nav.replaceChildren(...links);
}

async function loadMe() {
  session.me = null;
  if (token()) {
    try {
      session.me = await get("/api/accounts/users/me/");
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
  session.me = null;
  renderNav();
  go("#/login", "You are logged out.", true);
}

// Results as one types: the box stays where it is (in the header), the results view follows it.
let typing = null;
searchBox.addEventListener("input", () => {
  clearTimeout(typing);
  typing = setTimeout(() => {
    const words = searchBox.value;
    if (location.hash.startsWith("#/search")) {
      history.replaceState(null, "", `#/search?q=${encodeURIComponent(words.trim())}`);
      showSearch(words).catch(fail);
    } else if (words.trim()) {
      goSearch(words);
    }
  }, SEARCH_DEBOUNCE_MS);
});
searchForm.addEventListener("submit", (event) => {
  event.preventDefault();
  clearTimeout(typing);
  goSearch(searchBox.value);
});
searchBox.addEventListener("keydown", (event) => {
  if (event.key === "Escape") { searchBox.value = ""; searchBox.blur(); go("#/"); }
});

async function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = hash.split("?");
  const params = new URLSearchParams(query);
  const me = session.me;
  renderNav();
  if (!me && !PUBLIC.includes(path)) {
    go("#/login");
    return;
  }
  if (!path.startsWith("/search")) searchBox.value = "";
  const staffOnly = ["/categories", "/jobs", "/stats"].some((p) => path.startsWith(p));
  try {
    if (staffOnly && !me.is_staff) render(el("p", { class: "muted" }, "Only staff can open this page."));
    else if (path === "/login") showLogin({ loadMe });
    else if (path === "/signup") showSignup();
    else if (path === "/verify") render(verifyBox());
    else if (path === "/forgot") showForgot();
    else if (path === "/profile") showProfile({ loadMe });
    else if (path === "/upload") await showUpload({ render, el, say, fail, onLeave, me });
    else if (path === "/search") await showSearch(params.get("q") || "");
    else if (path === "/categories") await showCategories();
    else if (path === "/jobs") await showJobs(params.get("state") || "");
    else if (path.startsWith("/stats/")) await showStats(decodeURIComponent(path.slice(7)));
    else if (path === "/stats") await showOverview();
    else if (path.startsWith("/title/")) {
      await showDetails(decodeURIComponent(path.slice(7)), me.is_staff ? videoTools : null);
    } else if (path.startsWith("/video/")) {
      await showPlayer(decodeURIComponent(path.slice(7)), { render, el, say, fail, onLeave });
    } else await showHome();
    window.scrollTo(0, 0);
  } catch (err) {
    if (err.status === 401) {
      setToken(null);
      await loadMe();
      go("#/login", err.message);
      return;
    }
    if (err.status === 404) {
      render(el("div", { class: "empty" }, el("h1", {}, "Not found"),
        el("p", { class: "muted" }, err.message), el("a", { class: "button", href: "#/" }, "Back to browse")));
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
    say(...takeFlash()); // a message lives as long as the view it was said for
    route();
  });
  if (code && path.endsWith("/verify")) {
    history.replaceState(null, "", "/");
    if (path.includes("password")) return showResetPassword(code);
    if (path.includes("email")) return verifyEmailChange(code, loadMe);
    return verifySignup(code);
  }
  await route();
}

start();
