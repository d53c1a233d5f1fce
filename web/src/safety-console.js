// The control-room console: the district's incident queue, live; the selected incident's person on the map
// with their recent track and the nearest cameras; acknowledge → dispatch → resolve.
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
let current = null; // the selected incident's map data
let marker = null;
let trackLine = null;
const known = new Set([...queueBox.querySelectorAll(".incident")].map((li) => li.dataset.id));

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
    marker = L.marker([where.lat, where.lon], { icon: personIcon, zIndexOffset: 1000 }).addTo(layer);
    pts.push(marker.getLatLng());
    el.dataset.markerLat = where.lat.toFixed(6);
    el.dataset.markerLon = where.lon.toFixed(6);
  }
  for (const c of current.cameras) {
    L.marker([c.lat, c.lon], { icon: cameraIcon, title: c.name })
      .bindTooltip(`${c.name || c.id} · ${Math.round(c.distance_m)} m`)
      .addTo(layer);
    pts.push(L.latLng(c.lat, c.lon));
  }
  el.dataset.located = where ? "yes" : "no";
  el.dataset.cameraCount = String(current.cameras.length);
  fitTo(map, pts);
}

function markSelected() {
  for (const li of queueBox.querySelectorAll(".incident")) {
    li.classList.toggle("selected", current && li.dataset.id === String(current.id));
  }
}

function countOpen() {
  const open = queueBox.querySelectorAll("#queue .incident[data-status=open]").length;
  document.title = open ? `(${open}) ${baseTitle}` : baseTitle;
}

async function refreshQueue() {
  swap(queueBox, await part("/safety/console", "queue"));
  for (const li of queueBox.querySelectorAll(".incident")) {
    if (!known.has(li.dataset.id)) {
      known.add(li.dataset.id);
      li.classList.add("new"); // a visual highlight, no sound; it fades when the incident is opened
    }
  }
  markSelected();
  countOpen();
}

let selecting = 0;

async function select(id, push = true) {
  const mine = ++selecting;
  const html = await part(`/safety/console/${id}`, "detail");
  if (mine !== selecting) return; // a later selection or refresh has already been asked for
  swap(incidentBox, html);
  drawIncident();
  queueBox.querySelector(`.incident[data-id="${id}"]`)?.classList.remove("new");
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
  if (!current) await select(inc.id);
  // Only when its step changed elsewhere (another operator): re-rendering would wipe a form being filled in.
  else if (inc.id === current.id && inc.status !== current.status) await select(inc.id, false);
}

drawIncident();
countOpen();
ready.finally(() => {
  if (current) drawIncident(); // the city view the map fits to first must not win over the incident
  el.dataset.safety = "ready";
});
