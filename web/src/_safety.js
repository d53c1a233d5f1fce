// Shared by the safety pages: the live event stream, the page's settings, JSON calls with the CSRF token,
// and re-fetching a part of the page (rendered by the same server templates as the page itself).

export const root = document.getElementById("safety-root")?.dataset ?? {};

export function clock(iso, seconds = true) {
  if (!iso) return "";
  const opts = { hour: "2-digit", minute: "2-digit", hour12: false, timeZone: root.tz || undefined };
  if (seconds) opts.second = "2-digit";
  return new Date(iso).toLocaleTimeString(root.lang || undefined, opts);
}

// Opens the SSE stream; `handlers` maps event names (topics) to functions of the event's data.
export function live(topics, handlers) {
  const state = document.getElementById("live-state");
  const es = new EventSource(`/api/events/stream?topics=${encodeURIComponent(topics)}`);
  const mark = (on) => {
    if (!state) return;
    state.dataset.state = on ? "live" : "off";
    state.textContent = on ? state.dataset.on : state.dataset.off;
  };
  es.addEventListener("open", () => mark(true));
  es.addEventListener("error", () => mark(false));
  for (const [topic, fn] of Object.entries(handlers)) {
    es.addEventListener(topic, (e) => fn(JSON.parse(e.data), topic));
  }
  window.addEventListener("pagehide", () => es.close());
  return es;
}

export class ApiError extends Error {
  constructor(body, status) {
    const err = body?.error ?? {};
    const details = Array.isArray(err.details)
      ? err.details.map((d) => (typeof d === "object" ? [d.field, d.problem].filter(Boolean).join(": ") : d))
      : [];
    super([err.message || `HTTP ${status}`, ...details].join(" — "));
    this.code = err.code;
    this.status = status;
  }
}

export async function api(method, url, body) {
  const headers = { Accept: "application/json", "X-CSRF-Token": root.csrf || "" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin" });
  if (r.status === 204) return null;
  const data = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(data, r.status);
  return data;
}

export async function part(url, name) {
  const sep = url.includes("?") ? "&" : "?";
  const r = await fetch(`${url}${sep}part=${name}`, { headers: { Accept: "text/html" }, credentials: "same-origin" });
  if (!r.ok) throw new Error(`HTTP ${r.status}`);
  return r.text();
}

// Replaces an element's content with HTML from the server (scripts inside are JSON data, not code).
export function swap(el, html) {
  el.innerHTML = html;
}

export function readJSON(id) {
  const el = document.getElementById(id);
  return el ? JSON.parse(el.textContent) : null;
}

export function fitTo(map, latlngs, fallback) {
  const pts = latlngs.filter(Boolean);
  if (pts.length === 1) map.setView(pts[0], 16);
  else if (pts.length > 1) map.fitBounds(pts, { padding: [30, 30], maxZoom: 17 });
  else if (fallback) fallback();
}
