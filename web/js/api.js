// The public API, as any client calls it: JSON bodies, `Authorization: Token <token>`, errors readable.

const base = (document.querySelector('meta[name="videoflix-api"]')?.content || "").replace(/\/$/, "");
const TOKEN_KEY = "videoflix.token";

export const apiUrl = (path) => base + path;

export function token() {
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, data) {
    super(readable(status, data));
    this.status = status;
    this.data = data;
  }
}

// {"detail": "..."} or field errors {"field": ["sentence", ...]} as sentences a person can read.
export function readable(status, data) {
  if (data && typeof data === "object") {
    if (typeof data.detail === "string") return data.detail;
    const lines = Object.entries(data).map(([field, messages]) => {
      const text = Array.isArray(messages) ? messages.join(" ") : String(messages);
      return field === "non_field_errors" ? text : `${field.replace(/_/g, " ")}: ${text}`;
    });
    if (lines.length) return lines.join("\n");
  }
  return `The server answered ${status}.`;
}

export function authHeaders() {
  const value = token();
  return value ? { Authorization: `Token ${value}` } : {};
}

export async function request(method, path, body) {
  const headers = { Accept: "application/json", ...authHeaders() };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(apiUrl(path), init);
  } catch (err) {
    throw new ApiError(0, { detail: "The server cannot be reached." });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { detail: text.slice(0, 200) }; }
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body ?? {});
export const put = (path, body) => request("PUT", path, body);
export const patch = (path, body) => request("PATCH", path, body);
export const del = (path) => request("DELETE", path);
