// What every view shares: building nodes, the one message line, rendering into <main>, navigation.
import { ApiError } from "./api.js";

const view = document.getElementById("view");
const notice = document.getElementById("notice");
let leaving = null; // what the current view must stop (timers, players) when another one opens
let flash = null; // a message that survives the next navigation

export const session = { me: null }; // {id, email, is_staff, ...} of the logged-in user

// The message line: an error (red) or a success (green); empty text hides it. A message describes a
// state, so a navigation or a later success replaces it.
export function say(text, ok = false) {
  notice.textContent = text || "";
  notice.classList.toggle("ok", ok);
  notice.hidden = !text;
}

export function fail(err) {
  say(humanError(err));
}

// Any error as a sentence: the API's own, or a plain one for network and library failures (never
// "[object ProgressEvent]").
export function humanError(err) {
  if (err instanceof ApiError) return err.message;
  if (typeof err === "string") return err;
  const text = String(err?.message || "");
  if (!text || /\[object \w+\]|failed to fetch|networkerror|tus:/i.test(text)) {
    return "The connection to the server was lost. Check your network and try again.";
  }
  return text;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  node.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
  return node;
}

export function render(...nodes) {
  if (leaving) leaving();
  leaving = null;
  view.replaceChildren(...nodes);
}

export function onLeave(stop) {
  leaving = stop;
}

// Open a view; the message (if any) shows there, every older one is gone.
export function go(hash, text = "", ok = false) {
  flash = [text, ok];
  if (location.hash === hash) {
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  } else {
    location.hash = hash;
  }
}

export function takeFlash() {
  const value = flash || ["", false];
  flash = null;
  return value;
}

// A form card: the message line clears when it is sent, the button is busy while it is.
export function form(title, fields, submitText, onSubmit, ...extra) {
  const button = el("button", { type: "submit" }, submitText);
  const node = el("form", { class: "card", novalidate: true },
    title ? el("h1", {}, title) : null, ...fields, button, ...extra);
  node.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    say("");
    try {
      await onSubmit(Object.fromEntries(new FormData(node)), node);
    } catch (err) {
      fail(err);
    } finally {
      button.disabled = false;
    }
  });
  return node;
}

export const field = (label, name, type = "text", attrs = {}) =>
  el("label", {}, el("span", {}, label), el("input", { name, type, ...attrs }));

export function clock(seconds) {
  const s = Math.max(0, Math.round(seconds || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

// Set through the CSSOM: the Content-Security-Policy (style-src 'self') refuses style attributes.
export function setWidth(node, fraction) {
  node.style.width = `${(Math.max(0, Math.min(1, fraction)) * 100).toFixed(1)}%`;
  return node;
}

// A call that an API of another release may not have yet: its 404 (or 405) is "absent", not an error.
export async function optional(promise) {
  try {
    return await promise;
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.status === 405)) return null;
    throw err;
  }
}
