// The service worker (served as /sw.js, the whole site its scope). It keeps the app shell — the build's CSS,
// JS and icons by their hashed URLs, the main pages and an offline page in each language — and nothing else:
// pages are fetched from the network first, a kept copy (or the offline page) only when that fails, and no
// other page or API answer is ever stored, so nothing personal (contact details, locations: the safety pages
// and APIs) is kept on the phone. Kept reports are sent by Background Sync where the browser has it.
import "./_sw_push.js";
import { SYNC_TAG, sendKept } from "./_outbox.js";

/* global __BUILD__ */
const BUILD = __BUILD__; // { version, shell: [the build's URLs] }, written by web/build.mjs
// Written by the /sw.js route before this bundle: the city's languages, its default and its main pages.
const SITE = self.SHELL || { languages: ["ko"], language: "ko", pages: ["/"] };
const CACHE = `smartcity-${BUILD.version}-${hash(JSON.stringify(SITE))}`;
const OFFLINE = "/offline";

function hash(text) {
  let h = 0;
  for (let i = 0; i < text.length; i++) h = (Math.imul(h, 31) + text.charCodeAt(i)) | 0;
  return (h >>> 0).toString(36);
}

const withLang = (path, lang) => {
  const url = new URL(path, self.location.origin);
  url.searchParams.set("lang", lang);
  return url.pathname + url.search;
};

function shellPages() {
  return SITE.languages.flatMap((lang) => [OFFLINE, ...SITE.pages].map((path) => withLang(path, lang)));
}

// Only what carries nothing personal may be stored: the build, and the public geography the maps draw.
function storable(url) {
  return url.pathname.startsWith("/static/build/") || /^\/api\/geo\/[^/]+\.geojson$/.test(url.pathname);
}

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    // Pages are kept as a visitor sees them (no cookies): a signed-in citizen's details stay off the phone.
    await Promise.all(shellPages().map(async (path) => {
      const response = await fetch(path, { credentials: "omit" });
      if (!response.ok) throw new Error(`${path}: ${response.status}`);
      await cache.put(path, response);
    }));
    await cache.addAll(BUILD.shell);
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name.startsWith("smartcity-") && name !== CACHE) await caches.delete(name);
    await self.clients.claim();
  })());
});

async function pageLanguage(url) {
  const asked = url.searchParams.get("lang");
  if (SITE.languages.includes(asked)) return asked;
  const cookie = await self.cookieStore?.get("lang").catch(() => null);
  return SITE.languages.includes(cookie?.value) ? cookie.value : SITE.language;
}

async function page(request) {
  try {
    return await fetch(request);
  } catch (error) {
    const url = new URL(request.url);
    const lang = await pageLanguage(url);
    const cache = await caches.open(CACHE);
    const path = SITE.pages.includes(url.pathname) ? url.pathname : OFFLINE;
    const kept = await cache.match(withLang(path, lang));
    if (kept) return kept;
    throw error;
  }
}

async function stored(request) {
  const cache = await caches.open(CACHE);
  const kept = await cache.match(request);
  if (kept && new URL(request.url).pathname.startsWith("/static/build/")) return kept; // named by content
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(request, response.clone());
    return response;
  } catch (error) {
    if (kept) return kept;
    throw error;
  }
}

self.addEventListener("fetch", (event) => {
  const { request } = event;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate") event.respondWith(page(request));
  else if (storable(url)) event.respondWith(stored(request));
  // Anything else goes to the network as if there were no service worker, and is never stored.
});

self.addEventListener("sync", (event) => {
  if (event.tag !== SYNC_TAG) return;
  event.waitUntil((async () => {
    const done = await sendKept();
    const clients = await self.clients.matchAll({ type: "window" });
    for (const client of clients) client.postMessage({ type: "outbox", done: done.map(({ entry, ...o }) => ({ key: entry.key, ...o })) });
    // Rejecting asks the browser to try again later.
    if (done.some((d) => d.result === "later")) throw new Error("kept reports are left to send");
  })());
});
