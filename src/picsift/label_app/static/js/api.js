// fetch wrappers for the JSON API under api/: the annotator's name, errors with the server's detail.
// The access token travels in the HttpOnly cookie the page set; X-Picsift-Client marks requests as the page's own
// (the server refuses state-changing requests without it: a cross-site form cannot send it).
import { store } from "./state.js";

export function user() { return localStorage.getItem("picsift-user") || ""; }
export function setUser(name) { localStorage.setItem("picsift-user", name); }

// "&run=NAME" (the run picked in the header) for the requests that carry predictions; "" for the default run.
export function runParam() { return store.run ? `&run=${encodeURIComponent(store.run)}` : ""; }

export async function api(path, opts = {}) {
  const headers = { "Content-Type": "application/json", "X-Picsift-Client": "web" };
  if (user()) headers["X-Picsift-User"] = user();
  // body[data-pending] counts requests in flight, so scripts (and tests) can wait for the app to settle.
  document.body.dataset.pending = String(Number(document.body.dataset.pending || 0) + 1);
  let res, body = null;
  try {
    res = await fetch(path, { ...opts, headers: { ...headers, ...(opts.headers || {}) } });
    try { body = await res.json(); } catch (e) { body = null; }
  } finally {
    document.body.dataset.pending = String(Number(document.body.dataset.pending) - 1);
  }
  if (!res.ok) {
    const err = new Error((body && body.detail) || `${res.status} ${res.statusText}`);
    err.status = res.status; err.body = body;
    throw err;
  }
  return body;
}

export const post = (path, data) => api(path, { method: "POST", body: JSON.stringify(data) });
