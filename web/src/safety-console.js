// The control-room console: the district's incident queue, live and in priority order, each with a running
// timer since opening; an alarm seen and heard when an emergency arrives; every active incident and its danger
// zone on one map, the selected one's person with their recent track and the labelled nearest cameras;
// acknowledge → dispatch → resolve.
import { cityMap, L } from "./_citymap.js";
import { api, fitTo, live, part, readJSON, root, swap } from "./_safety.js";

const el = document.getElementById("map");
const queueBox = document.getElementById("queue-box");
const incidentBox = document.getElementById("incident-box");
const { map, ready } = cityMap(el);
const baseTitle = document.title;

const personIcon = L.divIcon({ className: "person-marker", iconSize: [22, 22], iconAnchor: [11, 11] });
const cameraIcon = L.divIcon({ className: "camera-marker", iconSize: [16, 16], iconAnchor: [8, 8] });
const layer = L.layerGroup().addTo(map);
const everyIncident = L.layerGroup().addTo(map); // all active incidents and their danger zones
let current = null; // the selected incident's map data
let marker = null;
let trackLine = null;
const known = new Set([...queueBox.querySelectorAll(".incident")].map((li) => li.dataset.id));
// Incidents that arrived while the page was open, highlighted until the operator opens each (a re-render keeps it).
const unseen = new Set();

function drawIncident() {
  layer.clearLayers();
  marker = null;
  trackLine = null;
  current = readJSON("incident-data");
  el.dataset.incident = current ? String(current.id) : "";
  if (!current || current.status === "resolved") {
    el.dataset.located = "no";
    return;
  }
  const pts = [];
  trackLine = L.polyline(current.track.map((t) => [t.lat, t.lon]), { className: "track", color: "#7c3aed",
    weight: 4 }).addTo(layer);
  pts.push(...trackLine.getLatLngs());
  const where = current.position ?? (current.lat != null ? { lat: current.lat, lon: current.lon } : null);
  if (where) {
    marker = L.marker([where.lat, where.lon], { icon: personIcon, title: current.person_name ?? "", zIndexOffset: 1000 }).addTo(layer);
    pts.push(marker.getLatLng());
    el.dataset.markerLat = where.lat.toFixed(6);
    el.dataset.markerLon = where.lon.toFixed(6);
  }
  for (const c of current.cameras) {
    L.marker([c.lat, c.lon], { icon: cameraIcon, title: c.name })
      .bindTooltip(`${c.name || c.id} · ${Math.round(c.distance_m)} m`,
        { permanent: true, direction: "right", className: "camera-label" })
      .addTo(layer);
    pts.push(L.latLng(c.lat, c.lon));
  }
  el.dataset.located = where ? "yes" : "no";
  el.dataset.cameraCount = String(current.cameras.length);
  fitTo(map, pts);
}

function drawAll() {
  everyIncident.clearLayers();
  const pins = readJSON("queue-data") ?? [];
  let zones = 0;
  for (const p of pins) {
    if (p.zone) {
      const style = { className: "zone danger", color: "#dc2626", weight: 2, fillOpacity: 0.15 };
      (p.zone.polygon ? L.geoJSON(p.zone.polygon, { style: () => style })
        : L.circle([p.zone.lat, p.zone.lon], { radius: p.zone.radius_m, ...style }))
        .bindTooltip(p.zone.name).addTo(everyIncident);
      zones += 1;
    }
    if (p.lat == null) continue;
    const icon = L.divIcon({ className: `incident-marker kind-${p.kind} status-${p.status}`, iconSize: [18, 18],
      iconAnchor: [9, 9] });
    L.marker([p.lat, p.lon], { icon, title: p.person_name })
      .bindTooltip(p.person_name, { direction: "top" })
      .on("click", () => select(p.id))
      .addTo(everyIncident);
  }
  el.dataset.incidentCount = String(pins.filter((p) => p.lat != null).length);
  el.dataset.zoneCount = String(zones);
}

// Running timers since opening, in the queue (m:ss, or h:mm:ss after an hour).
function elapsed(since) {
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(since)) / 1000));
  const [h, m, sec] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  const two = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${two(m)}:${two(sec)}` : `${m}:${two(sec)}`;
}

function tick() {
  for (const t of queueBox.querySelectorAll(".timer[data-since]")) t.textContent = elapsed(t.dataset.since);
}
setInterval(tick, 1000);

// The alarm. Sound is generated here (no audio file); browsers start an AudioContext only after the operator
// has interacted with the page, so the console starts muted and says so until the first click or key.
const alarm = document.getElementById("alarm");
const soundButton = document.getElementById("sound");
let audio = null;
let muted = true;
let repeat = null;

function setSound(on) {
  muted = !on;
  if (on) {
    audio ??= new AudioContext();
    audio.resume();
  }
  soundButton.setAttribute("aria-pressed", String(on));
  soundButton.textContent = on ? soundButton.dataset.on : soundButton.dataset.off;
}

function firstGesture(e) {
  document.removeEventListener("pointerdown", firstGesture, true);
  document.removeEventListener("keydown", firstGesture, true);
  if (e.target !== soundButton) setSound(true);
}
document.addEventListener("pointerdown", firstGesture, true);
document.addEventListener("keydown", firstGesture, true);
soundButton.addEventListener("click", () => setSound(muted));

function beep() {
  if (muted || !audio) return;
  const t0 = audio.currentTime;
  for (let i = 0; i < 3; i++) { // three short tones, high-low-high
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    const t = t0 + i * 0.3;
    osc.type = "square";
    osc.frequency.value = i % 2 ? 660 : 880;
    gain.gain.setValueAtTime(0.15, t);
    gain.gain.exponentialRampToValueAtTime(0.001, t + 0.25);
    osc.connect(gain).connect(audio.destination);
    osc.start(t);
    osc.stop(t + 0.26);
  }
  alarm.dataset.beeps = String(Number(alarm.dataset.beeps) + 1);
}

function raiseAlarm(li) {
  document.getElementById("alarm-what").textContent =
    [li?.querySelector(".badge.kind")?.textContent, li?.querySelector(".who")?.textContent].filter(Boolean).join(" · ");
  alarm.hidden = false;
  beep();
  // Repeated while an emergency is waiting for someone to acknowledge it.
  repeat ??= setInterval(() => (openCount() ? beep() : quietAlarm()), 15000);
}

function quietAlarm() {
  alarm.hidden = true;
  clearInterval(repeat);
  repeat = null;
}

function openCount() {
  return queueBox.querySelectorAll("#queue .incident[data-status=open]").length;
}

function markSelected() {
  for (const li of queueBox.querySelectorAll(".incident")) {
    li.classList.toggle("selected", current && li.dataset.id === String(current.id));
  }
}

function countOpen() {
  const open = openCount();
  document.title = open ? `(${open}) ${baseTitle}` : baseTitle;
  if (!open) quietAlarm();
}

async function refreshQueue() {
  swap(queueBox, await part("/safety/console", "queue"));
  for (const li of queueBox.querySelectorAll(".incident")) {
    if (!known.has(li.dataset.id)) {
      known.add(li.dataset.id);
      unseen.add(li.dataset.id);
      if (li.dataset.status === "open") raiseAlarm(li);
    }
    li.classList.toggle("new", unseen.has(li.dataset.id)); // highlighted until the operator opens it
  }
  markSelected();
  countOpen();
  drawAll();
  tick();
}

let selecting = 0;

async function select(id, push = true, byOperator = true) {
  const mine = ++selecting;
  const html = await part(`/safety/console/${id}`, "detail");
  if (mine !== selecting) return; // a later selection or refresh has already been asked for
  swap(incidentBox, html);
  drawIncident();
  if (byOperator) {
    unseen.delete(String(id));
    queueBox.querySelector(`.incident[data-id="${id}"]`)?.classList.remove("new");
  }
  markSelected();
  if (push) history.pushState({ id }, "", `/safety/console/${id}`);
}

queueBox.addEventListener("click", (e) => {
  const link = e.target.closest(".incident a");
  if (!link || e.ctrlKey || e.metaKey) return;
  e.preventDefault();
  select(link.closest(".incident").dataset.id);
});
window.addEventListener("popstate", (e) => {
  if (e.state?.id) select(e.state.id, false);
});

incidentBox.addEventListener("submit", async (e) => {
  const form = e.target.closest("form.action");
  if (!form) return;
  e.preventDefault();
  const step = form.dataset.step;
  const f = form.elements;
  const body = step === "dispatch" ? { agency: f.agency.value, reference: f.reference.value, notes: f.notes.value }
    : step === "resolve" ? { resolution: f.resolution.value } : undefined;
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await api("POST", `/api/safety/incidents/${current.id}/${step}`, body);
    await select(current.id, false);
    await refreshQueue();
  } catch (err) {
    document.getElementById("action-error").textContent = err.message;
    button.disabled = false;
  }
});

live("safety.incident.,safety.position", {
  "safety.incident.opened": onIncident,
  "safety.incident.acknowledged": onIncident,
  "safety.incident.dispatched": onIncident,
  "safety.incident.resolved": onIncident,
  "safety.position": (p) => {
    if (!current || !marker || p.person_id !== current.person_id) return;
    marker.setLatLng([p.lat, p.lon]);
    trackLine?.addLatLng([p.lat, p.lon]);
    el.dataset.markerLat = p.lat.toFixed(6);
    el.dataset.markerLon = p.lon.toFixed(6);
  },
});

async function onIncident(inc) {
  await refreshQueue();
  // The event can outrun what this page's next read sees (another process's commit): look again, briefly.
  for (let tries = 1; tries <= 5 && inc.status !== "resolved" && !queueBox.querySelector(`.incident[data-id="${inc.id}"]`); tries++) {
    await new Promise((done) => setTimeout(done, 200 * tries));
    await refreshQueue();
  }
  if (!current) await select(inc.id, true, false); // shown, but still new until the operator opens it
  // Only when its step changed elsewhere (another operator): re-rendering would wipe a form being filled in.
  else if (inc.id === current.id && inc.status !== current.status) await select(inc.id, false, false);
}

drawIncident();
drawAll();
tick();
countOpen();
ready.finally(() => {
  if (current) drawIncident(); // the city view the map fits to first must not win over the incident
  el.dataset.safety = "ready";
});
