// The dashboard's one door to the JSON API. The API key is sent once, to POST /v1/session, which answers
// with an HttpOnly SameSite=Strict cookie (never readable here) and a CSRF token kept in this module's
// memory only: not in localStorage, sessionStorage or the URL. Every change (POST/PUT/PATCH/DELETE) carries
// the token in X-CSRF-Token; reads and event streams ride on the cookie alone.

let me = null;
let csrf = null;

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.field = problem.field || null;
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
  }
}

export function session() {
  return me;
}

// The same rule as app/auth.py: admin may do anything, train may also read.
export function allows(scope) {
  if (!me) return false;
  const s = me.scopes || [];
  return s.includes("admin") || s.includes(scope) || (scope === "read" && s.includes("train"));
}

export function toSignIn() {
  const next = location.pathname + location.search;
  location.assign(`/signin?next=${encodeURIComponent(next)}`);
}

async function problemOf(r) {
  try {
    const body = await r.json();
    return typeof body === "object" && body ? body : { detail: String(body) };
  } catch {
    return { detail: `${r.status} ${r.statusText}` };
  }
}

function headersFor(method, extra) {
  const headers = { Accept: "application/json", ...(extra || {}) };
  if (method !== "GET" && method !== "HEAD" && csrf) headers["X-CSRF-Token"] = csrf;
  return headers;
}

export async function request(path, { method = "GET", json, body, signal, raw = false, headers } = {}) {
  headers = headersFor(method, headers);
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  const r = await fetch(path, { method, headers, body, signal, credentials: "same-origin" });
  if (r.status === 401 && !path.startsWith("/v1/session")) {
    me = null;
    toSignIn();
  }
  if (!r.ok) throw new ApiError(r.status, await problemOf(r));
  if (raw) return r;
  if (r.status === 204) return null;
  const type = r.headers.get("content-type") || "";
  return type.includes("json") ? r.json() : r.text();
}

export const get = (path, opts) => request(path, opts);
export const post = (path, json, opts) => request(path, { ...opts, method: "POST", json });
export const put = (path, json, opts) => request(path, { ...opts, method: "PUT", json });
export const patch = (path, json, opts) => request(path, { ...opts, method: "PATCH", json });
export const del = (path, opts) => request(path, { ...opts, method: "DELETE" });

// A query string from an object, leaving out empty values: {a: 1, b: ""} -> "?a=1".
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

// Asked once per page load: the session (who, which scopes, the CSRF token), or null when signed out.
export async function loadSession() {
  try {
    const s = await request("/v1/session");
    me = s;
    csrf = s.csrf_token || null;
    return s;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return null;
    throw e;
  }
}

export async function signIn(key) {
  const s = await request("/v1/session", { method: "POST", json: { key } });
  me = s;
  csrf = s.csrf_token || null;
  return s;
}

export async function signOut() {
  try {
    await request("/v1/session", { method: "DELETE" });
  } finally {
    me = null;
    csrf = null;
  }
}

// A multipart upload through XMLHttpRequest, for its upload progress events (fetch has none).
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    for (const [k, v] of Object.entries(headersFor("POST"))) xhr.setRequestHeader(k, v);
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total);
    });
    xhr.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { body = { detail: xhr.responseText }; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, body || {}));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, { detail: "the upload failed (network error)" })));
    xhr.send(form);
  });
}
