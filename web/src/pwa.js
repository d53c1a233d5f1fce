// On every page: the service worker that makes the site an installable app that opens offline, and the
// reports kept on this phone while offline, sent when the page loads or the connection returns (and by the
// service worker's Background Sync where the browser has it). The note says what is kept and what was sent.
import { discard, kept, sendKept } from "./_outbox.js";

const note = document.getElementById("outbox-note");

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js").catch(() => {});
  navigator.serviceWorker.addEventListener("message", (ev) => {
    if (ev.data?.type === "outbox") show(ev.data.done.map((d) => ({ ...d, entry: { key: d.key } })));
  });
}

const text = (template, values) => template.replace(/\{(\w+)\}/g, (_, k) => values[k] ?? "");

// What was sent while this page is open, by whichever sender (this page, another tab, the service worker).
const sent = new Map();

async function show(done = []) {
  if (!note || !("indexedDB" in window)) return;
  for (const d of done) if (d.result === "sent") sent.set(d.entry.key, d);
  const items = await kept().catch(() => []);
  const waiting = items.filter((e) => !e.refused);
  const refused = items.filter((e) => e.refused);
  const parts = [];
  for (const d of sent.values()) {
    const p = document.createElement("p");
    p.className = "outbox-sent";
    const number = /\/reports\/(\d+)\//.exec(d.url || "")?.[1];
    const link = document.createElement("a");
    link.href = number ? `/reports/${number}` : d.url;
    link.textContent = number ? `#${number}` : d.url;
    p.append(note.dataset.sent, " ", link);
    parts.push(p);
  }
  if (waiting.length) {
    const p = document.createElement("p");
    p.className = "outbox-waiting";
    p.textContent = text(waiting.length === 1 ? note.dataset.keptOne : note.dataset.keptMany, { n: waiting.length });
    parts.push(p);
  }
  for (const entry of refused) {
    const p = document.createElement("p");
    p.className = "outbox-refused";
    const title = entry.fields.find(([k]) => k === "title")?.[1] || "";
    p.append(text(note.dataset.refused, { title }), " ");
    const open = document.createElement("a");
    open.href = `${new URL(entry.page).pathname}?restore=${encodeURIComponent(entry.key)}`;
    open.textContent = note.dataset.open;
    const drop = document.createElement("button");
    drop.type = "button";
    drop.className = "link";
    drop.textContent = note.dataset.discard;
    drop.addEventListener("click", () => discard(entry.key).then(() => show()));
    p.append(open, " · ", drop);
    parts.push(p);
  }
  note.replaceChildren(...parts);
  note.hidden = !parts.length;
  note.dataset.waiting = String(waiting.length);
}

async function send() {
  if (!("indexedDB" in window)) return;
  const done = await sendKept().catch(() => []);
  await show(done);
}

window.addEventListener("online", send);
window.addEventListener("outbox:changed", () => show());
send();
