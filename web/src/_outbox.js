// Reports kept on the phone while the server cannot be reached (IndexedDB: the form's fields and its photos as
// Blobs), sent when the connection returns. Used by the pages (reports.js keeps, pwa.js sends on load and when
// back online) and by the service worker (Background Sync). A report is sent with the idempotency key it was
// kept with, so a send repeated after a lost answer does not file it twice; sending holds a lock, so two
// senders (two tabs, a page and the service worker) do not even try the same report at once.

const DB_NAME = "smartcity-outbox";
const STORE = "reports";
export const SYNC_TAG = "report-outbox";

function database() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "key" });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function run(mode, fn) {
  const db = await database();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = fn(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req?.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

// A form's content as it will be sent: text fields as pairs, files as Blobs with their names.
export function entryOf(form, formData) {
  const fields = [], files = [];
  for (const [name, value] of formData.entries()) {
    if (typeof value === "string") fields.push([name, value]);
    else if (value.size || value.name) files.push({ field: name, name: value.name, blob: value });
  }
  const key = fields.find(([name]) => name === "idempotency_key")?.[1];
  return { key, action: form.action, page: location.href, fields, files, keptAt: new Date().toISOString() };
}

export const keep = (entry) => run("readwrite", (store) => store.put(entry));
export const kept = () => run("readonly", (store) => store.getAll());
const remove = (key) => run("readwrite", (store) => store.delete(key));
const update = (entry) => run("readwrite", (store) => store.put(entry));

function body(entry, token) {
  const data = new FormData();
  for (const [name, value] of entry.fields) data.append(name, name === "csrf_token" && token ? token : value);
  for (const f of entry.files) data.append(f.field, f.blob, f.name);
  return data;
}

// The form's page gives a fresh CSRF token (a report kept from a page the service worker kept, or from an
// expired session, carries one the server no longer accepts).
async function freshToken(entry) {
  const page = await fetch(entry.page, { credentials: "same-origin", headers: { Accept: "text/html" } });
  const match = /name="csrf_token" value="([^"]+)"/.exec(await page.text());
  return match?.[1];
}

// One kept report, sent: "sent" (with the new report's page), "refused" (the server will not take it as it
// is: kept, marked, for the citizen to see), or "later" (no connection, or the server is busy).
async function sendOne(entry) {
  let token = null;
  for (let attempt = 0; attempt < 2; attempt++) {
    let response;
    try {
      response = await fetch(entry.action, {
        method: "POST",
        body: body(entry, token),
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
    } catch {
      return { result: "later" };
    }
    if (response.ok && response.redirected) return { result: "sent", url: response.url };
    if (response.status === 403 && attempt === 0) {
      token = await freshToken(entry).catch(() => null);
      if (token) continue;
    }
    if (response.status === 409 || response.status === 429 || response.status >= 500) return { result: "later" };
    return { result: "refused", status: response.status };
  }
  return { result: "later" };
}

function locked(fn) {
  return navigator.locks ? navigator.locks.request(`${DB_NAME}-send`, fn) : fn();
}

// Sends every kept report not refused before. Returns what happened to each: [{entry, result, url}].
export function sendKept() {
  return locked(async () => {
    const done = [];
    for (const entry of await kept()) {
      if (entry.refused) continue;
      const outcome = await sendOne(entry);
      if (outcome.result === "sent") await remove(entry.key);
      else if (outcome.result === "refused") await update({ ...entry, refused: outcome.status });
      done.push({ entry, ...outcome });
      if (outcome.result === "later") break; // no connection: the rest would fail the same way
    }
    return done;
  });
}

export async function discard(key) {
  await remove(key);
}
