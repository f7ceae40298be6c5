// Staff upload: resumable (tus, vendored tus-js-client) when the server offers it, else one multipart
// POST; then the video's transcode progress, polled until it is ready.
import { ApiError, apiUrl, authHeaders, get } from "./api.js";
import { humanError } from "./ui.js";

const TUS_ENDPOINT = "/api/uploads/";
const POLL_MS = 2000;

async function tusOffered() {
  if (!window.tus || !tus.isSupported) return false;
  try {
    const reply = await fetch(apiUrl(TUS_ENDPOINT), { method: "OPTIONS", headers: authHeaders() });
    return reply.ok && Boolean(reply.headers.get("Tus-Resumable") || reply.headers.get("Tus-Version"));
  } catch {
    return false;
  }
}

// Back-off between the attempts after a dropped connection (tus-js-client's retryDelays): the
// attempts restart from the first delay whenever a retry made progress.
export const RETRY_DELAYS = [1000, 3000, 5000, 10000, 20000, 30000];

// tus-js-client's own rule (retry unless a 4xx other than 409/423, and not while offline), plus a
// sentence for the person waiting.
function shouldRetry(err, attempt, options, sayRetry) {
  const status = err.originalResponse ? err.originalResponse.getStatus() : 0;
  const retry = (status < 400 || status >= 500 || status === 409 || status === 423)
    && (typeof navigator === "undefined" || navigator.onLine !== false);
  if (retry) sayRetry(options.retryDelays[attempt], attempt + 1, options.retryDelays.length, status);
  return retry;
}

function uploadTus(file, fields, onProgress, say) {
  return new Promise((resolve, reject) => {
    let videoId = null;
    let percent = 0;
    let retrying = false;
    const upload = new tus.Upload(file, {
      endpoint: apiUrl(TUS_ENDPOINT),
      headers: authHeaders(),
      metadata: { ...fields, filename: file.name, filetype: file.type || "application/octet-stream" },
      chunkSize: 16 * 1024 * 1024,
      retryDelays: RETRY_DELAYS,
      removeFingerprintOnSuccess: true,
      onShouldRetry: (err, attempt, options) => shouldRetry(err, attempt, options, (delay, n, of, status) => {
        retrying = true;
        const why = status ? `The server answered ${status}` : "The connection dropped";
        say(`${why} at ${percent} %. Trying again in ${Math.round(delay / 1000)} s (attempt ${n} of ${of}); `
          + "the upload goes on from where it stopped.");
      }),
      onProgress: (sent, total) => {
        percent = Math.floor((100 * sent) / total);
        if (retrying) {
          retrying = false;
          say("Connected again; the upload goes on.", true);
        }
        onProgress(sent, total);
      },
      onAfterResponse: (_request, response) => {
        const id = response.getHeader("Video-Id");
        if (id) videoId = id;
      },
      onError: (err) => {
        const response = err.originalResponse;
        if (response && response.getStatus()) {
          let data = null;
          try { data = JSON.parse(response.getBody()); } catch { /* not JSON */ }
          reject(new ApiError(response.getStatus(), data));
        } else {
          reject(new ApiError(0, { detail: `The connection was lost at ${percent} % and did not come back. `
            + "Choose the same file and press Upload to continue from there." }));
        }
      },
      onSuccess: () => (videoId ? resolve({ id: videoId, resumed }) : reject(new Error("The upload ended without a video id."))),
    });
    let resumed = false;
    // The same file chosen again after a reload continues where the server's offset says.
    upload.findPreviousUploads().then((previous) => {
      if (previous.length) {
        upload.resumeFromPreviousUpload(previous[0]);
        resumed = true;
        say("Resuming the earlier upload of this file.", true);
      }
      upload.start();
    }, reject);
  });
}

function uploadMultipart(file, fields, onProgress) {
  return new Promise((resolve, reject) => {
    const body = new FormData();
    for (const [name, value] of Object.entries(fields)) if (value) body.append(name, value);
    body.append("file", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", apiUrl("/api/videos/"));
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => { if (event.lengthComputable) onProgress(event.loaded, event.total); };
    xhr.onerror = () => reject(new ApiError(0, { detail: "The upload was interrupted." }));
    xhr.onload = () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status === 201 && data) resolve({ id: data.id, resumed: false });
      else reject(new ApiError(xhr.status, data));
    };
    xhr.send(body);
  });
}

export async function showUpload({ render, el, say, fail, onLeave, me }) {
  if (!me?.is_staff) {
    render(el("p", {}, "Only staff can upload videos."));
    return;
  }
  const categories = await get("/api/categories/");
  const resumable = await tusOffered();
  const bar = el("progress", { id: "upload-progress", max: "100", value: "0", hidden: true, "aria-label": "Upload progress" });
  const barText = el("span", { class: "muted", id: "upload-percent" }, "");
  const status = el("p", { class: "status", id: "video-status" });
  const transcode = el("progress", { id: "transcode-progress", max: "100", value: "0", hidden: true });
  const button = el("button", { type: "submit" }, "Upload");
  const node = el("form", { class: "card", id: "upload-form" },
    el("h1", {}, "Upload a video"),
    el("p", { class: "muted" }, resumable
      ? "Resumable: if the connection drops or the page reloads, choose the same file again to continue."
      : "One request: keep this page open until the upload ends."),
    el("label", {}, "File", el("input", { type: "file", name: "file", accept: "video/*", required: true })),
    el("label", {}, "Title", el("input", { type: "text", name: "title", required: true })),
    el("label", {}, "Description", el("textarea", { name: "description", rows: "3" })),
    el("label", {}, "Category",
      el("select", { name: "category" }, el("option", { value: "" }, "None"),
        categories.map((c) => el("option", { value: c.id }, c.name)))),
    button, bar, barText, status, transcode);
  render(node);

  let poll = null;
  let left = false;
  onLeave(() => { left = true; clearTimeout(poll); });

  async function follow(id) {
    try {
      const video = await get(`/api/videos/${encodeURIComponent(id)}/`);
      transcode.hidden = false;
      transcode.value = video.transcode_progress;
      status.dataset.status = video.status;
      if (video.status === "ready") {
        status.replaceChildren(`Ready. `, el("a", { href: `#/video/${video.id}` }, `Watch “${video.title}”`));
        return;
      }
      if (video.status === "failed") {
        status.textContent = `Failed: ${video.error || "the video could not be transcoded."}`;
        return;
      }
      status.textContent = `${video.status === "pending" ? "Waiting for a transcoder" : "Transcoding"}: `
        + `${Math.round(video.transcode_progress)} %${video.playable ? " (already playable)" : ""}`;
    } catch (err) {
      fail(err);
    }
    if (!left) poll = setTimeout(() => follow(id), POLL_MS);
  }

  node.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(node);
    const file = data.get("file");
    if (!(file instanceof File) || !file.size) return say("Choose a video file first.");
    if (!String(data.get("title")).trim()) return say("Give the video a title.");
    const fields = { title: data.get("title"), description: data.get("description"), category: data.get("category") };
    button.disabled = true;
    bar.hidden = false;
    say("");
    const onProgress = (sent, total) => {
      bar.value = (100 * sent) / total;
      barText.textContent = `${Math.floor((100 * sent) / total)} % of ${(total / 1e6).toFixed(1)} MB`;
    };
    try {
      const { id, resumed } = resumable
        ? await uploadTus(file, fields, onProgress, say) : await uploadMultipart(file, fields, onProgress);
      // Finished: the form is ready for the next file; the status line follows this one.
      node.reset();
      say(`“${fields.title}” is uploaded${resumed ? " (resumed from the earlier upload of this file)" : ""}.`, true);
      status.textContent = "Uploaded; waiting for the transcoder.";
      clearTimeout(poll);
      follow(id);
    } catch (err) {
      say(err instanceof ApiError ? err.message : humanError(err));
    } finally {
      button.disabled = false;
    }
  });
}
