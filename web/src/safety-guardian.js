// The guardian view: the ward's position and today's path, live; their zones with an editor on the map.
import { cityMap, L } from "./_citymap.js";
import { api, clock, fitTo, live, part, readJSON, root, swap } from "./_safety.js";

const el = document.getElementById("map");
const data = readJSON("ward-data");
const personId = Number(root.person);
const { map, ready } = cityMap(el);

const personIcon = L.divIcon({ className: "person-marker", iconSize: [22, 22], iconAnchor: [11, 11] });
const path = L.polyline([], { className: "track", color: "#7c3aed", weight: 4, opacity: 0.8 }).addTo(map);
const zoneLayer = L.layerGroup().addTo(map);
const draftLayer = L.layerGroup().addTo(map);
let marker = null;
let accuracy = null;
let zones = data.zones;

function showPosition(p) {
  if (!p) return;
  const ll = [p.lat, p.lon];
  if (!marker) {
    marker = L.marker(ll, { icon: personIcon, title: data.person.name, zIndexOffset: 1000 }).addTo(map);
    accuracy = L.circle(ll, { radius: p.accuracy || 0, className: "accuracy", weight: 1, fillOpacity: 0.1 }).addTo(map);
  } else {
    marker.setLatLng(ll);
    accuracy.setLatLng(ll).setRadius(p.accuracy || 0);
  }
  el.dataset.markerLat = p.lat.toFixed(6);
  el.dataset.markerLon = p.lon.toFixed(6);
  const last = document.getElementById("last-fix");
  if (last) last.textContent = clock(p.fix_time);
  const near = document.getElementById("near"); // described again by _citymap.js ("near <place>, <동>, <구>")
  if (near) near.dataset.near = `${p.lat.toFixed(5)},${p.lon.toFixed(5)}`;
  const seen = document.getElementById("last-seen");
  if (seen && !data.replay && Date.now() - Date.parse(p.fix_time) < 60_000) seen.textContent = seen.dataset.now;
  if (p.accuracy != null) document.getElementById("accuracy").textContent = `± ${Math.round(p.accuracy)} m`;
  if (p.battery != null) document.getElementById("battery").textContent = `${Math.round(p.battery)}%`;
}

function drawZones() {
  zoneLayer.clearLayers();
  for (const z of zones) {
    const style = { className: `zone ${z.kind}`, color: z.kind === "danger" ? "#b91c1c" : "#15803d", weight: 2,
      fillOpacity: 0.12 };
    const shape = z.polygon
      ? L.geoJSON(z.polygon, { style: () => style })
      : L.circle([z.lat, z.lon], { radius: z.radius_m, ...style });
    shape.bindTooltip(z.name);
    zoneLayer.addLayer(shape);
  }
  el.dataset.zoneCount = String(zones.length);
}

// --- first paint ------------------------------------------------------------------------------
path.setLatLngs(data.track.map((t) => [t.lat, t.lon]));
el.dataset.pathPoints = String(data.track.length);
showPosition(data.position);
drawZones();
ready.finally(() => {
  const pts = data.track.map((t) => [t.lat, t.lon]);
  if (data.position) pts.push([data.position.lat, data.position.lon]);
  for (const z of zones) if (z.kind === "safe") pts.push([z.lat, z.lon]);
  fitTo(map, pts);
  el.dataset.safety = "ready";
});

// --- live -------------------------------------------------------------------------------------
async function refreshAlerts() {
  const box = document.getElementById("alerts-box");
  swap(box, await part(location.pathname, "alerts"));
  box.querySelector(".alert")?.classList.add("new");
}

live("safety.position,safety.alert,safety.incident.", {
  "safety.position": (p) => {
    // A past day's path stays as it was: live fixes belong to today.
    if (p.person_id !== personId || data.replay) return;
    showPosition(p);
    path.addLatLng([p.lat, p.lon]);
    el.dataset.pathPoints = String(path.getLatLngs().length);
  },
  "safety.alert": (a) => {
    if (a.person_id === personId) refreshAlerts();
  },
});

// --- the zone editor --------------------------------------------------------------------------
const form = document.getElementById("zone-form");
const status = document.getElementById("zone-status");
const error = document.getElementById("zone-error");
const windows = document.getElementById("windows");
const radiusInput = form.elements.radius_m;
let draft = null; // {id, shape, center, radius, corners}

const shapeOf = () => form.querySelector("input[name=shape]:checked").value;

function showShapeFields() {
  for (const box of form.querySelectorAll("[data-shape]")) box.hidden = box.dataset.shape !== shapeOf();
}

function addWindow(w) {
  const node = document.getElementById("window-template").content.firstElementChild.cloneNode(true);
  if (w) {
    for (const box of node.querySelectorAll(".days input")) box.checked = w.days.includes(Number(box.value));
    node.querySelector(".start").value = w.start;
    node.querySelector(".end").value = w.end;
  }
  node.querySelector(".remove-window").addEventListener("click", () => node.remove());
  windows.appendChild(node);
}

function schedule() {
  return [...windows.querySelectorAll(".window")].map((w) => ({
    days: [...w.querySelectorAll(".days input:checked")].map((b) => Number(b.value)),
    start: w.querySelector(".start").value,
    end: w.querySelector(".end").value,
  }));
}

function drawDraft() {
  draftLayer.clearLayers();
  if (!draft) return;
  if (draft.shape === "circle" && draft.center) {
    const circle = L.circle(draft.center, { radius: draft.radius, className: "zone draft", color: "#1d4ed8",
      dashArray: "6 4", weight: 2 }).addTo(draftLayer);
    const edge = L.latLng(draft.center[0], draft.center[1] + metresToLon(draft.radius, draft.center[0]));
    const handle = L.marker(edge, { draggable: true, title: "radius",
      icon: L.divIcon({ className: "radius-handle", iconSize: [18, 18], iconAnchor: [9, 9] }) }).addTo(draftLayer);
    handle.on("drag", () => {
      draft.radius = Math.max(20, Math.min(5000, Math.round(map.distance(draft.center, handle.getLatLng()))));
      circle.setRadius(draft.radius);
      radiusInput.value = draft.radius;
    });
    handle.on("dragend", drawDraft);
    el.dataset.draft = "circle";
  } else if (draft.shape === "polygon" && draft.corners.length) {
    if (draft.corners.length > 2) {
      L.polygon(draft.corners, { className: "zone draft", color: "#1d4ed8", dashArray: "6 4", weight: 2 })
        .addTo(draftLayer);
    } else {
      L.polyline(draft.corners, { color: "#1d4ed8", dashArray: "6 4" }).addTo(draftLayer);
    }
    for (const c of draft.corners) L.circleMarker(c, { radius: 5, className: "corner" }).addTo(draftLayer);
    el.dataset.draft = `polygon:${draft.corners.length}`;
  } else {
    delete el.dataset.draft;
  }
}

function metresToLon(m, lat) {
  return m / (111320 * Math.cos((lat * Math.PI) / 180));
}

function openForm(zone) {
  error.textContent = "";
  status.textContent = "";
  form.reset();
  windows.replaceChildren();
  const shape = zone?.polygon ? "polygon" : "circle";
  form.querySelector(`input[name=shape][value=${shape}]`).checked = true;
  document.getElementById("zone-form-title").textContent = zone ? form.dataset.titleEdit : form.dataset.titleNew;
  draft = { id: zone?.id ?? null, shape, center: null, radius: Number(radiusInput.value) || 100, corners: [] };
  if (zone) {
    form.elements.name.value = zone.name;
    if (zone.polygon) draft.corners = zone.polygon.coordinates[0].slice(0, -1).map(([lon, lat]) => [lat, lon]);
    else {
      draft.center = [zone.lat, zone.lon];
      draft.radius = Math.round(zone.radius_m);
      radiusInput.value = draft.radius;
    }
    for (const w of zone.schedule || []) addWindow(w);
  }
  showShapeFields();
  form.hidden = false;
  document.getElementById("new-zone").hidden = true;
  el.classList.add("editing");
  drawDraft();
  form.elements.name.focus();
}

function closeForm() {
  form.hidden = true;
  document.getElementById("new-zone").hidden = false;
  el.classList.remove("editing");
  draft = null;
  drawDraft();
}

map.on("click", (e) => {
  if (!draft) return;
  const ll = [e.latlng.lat, e.latlng.lng];
  if (draft.shape === "circle") draft.center = ll;
  else draft.corners.push(ll);
  drawDraft();
});

for (const radio of form.querySelectorAll("input[name=shape]")) {
  radio.addEventListener("change", () => {
    draft.shape = shapeOf();
    showShapeFields();
    drawDraft();
  });
}
radiusInput.addEventListener("input", () => {
  const r = Number(radiusInput.value);
  if (draft && Number.isFinite(r) && r > 0) {
    draft.radius = r;
    drawDraft();
  }
});
document.getElementById("undo-corner").addEventListener("click", () => {
  draft?.corners.pop();
  drawDraft();
});
document.getElementById("add-window").addEventListener("click", () => addWindow());
document.getElementById("new-zone").addEventListener("click", () => openForm(null));
document.getElementById("cancel-zone").addEventListener("click", closeForm);

async function reloadZones(message) {
  zones = (await api("GET", `/api/safety/wards/${personId}/zones`)).zones;
  drawZones();
  swap(document.getElementById("zones-box"), await part(location.pathname, "zones"));
  status.textContent = message;
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  error.textContent = "";
  const body = { name: form.elements.name.value.trim(), schedule: schedule() };
  if (draft.shape === "circle") {
    if (!draft.center) {
      error.textContent = form.dataset.needCenter;
      return;
    }
    Object.assign(body, { lat: draft.center[0], lon: draft.center[1], radius_m: Number(radiusInput.value) });
  } else {
    if (draft.corners.length < 3) {
      error.textContent = form.dataset.needCorners;
      return;
    }
    const ring = [...draft.corners, draft.corners[0]].map(([lat, lon]) => [lon, lat]);
    body.polygon = { type: "Polygon", coordinates: [ring] };
  }
  try {
    const url = `/api/safety/wards/${personId}/zones`;
    if (draft.id) await api("PUT", `${url}/${draft.id}`, body);
    else await api("POST", url, body);
    closeForm();
    await reloadZones(form.dataset.saved);
  } catch (err) {
    error.textContent = err.message;
  }
});

document.getElementById("zones-box").addEventListener("click", async (e) => {
  const edit = e.target.closest("[data-edit-zone]");
  const del = e.target.closest("[data-delete-zone]");
  if (edit) openForm(zones.find((z) => z.id === Number(edit.dataset.editZone)));
  if (del && window.confirm(form.dataset.confirmDelete)) {
    try {
      await api("DELETE", `/api/safety/wards/${personId}/zones/${del.dataset.deleteZone}`);
      await reloadZones(form.dataset.deleted);
    } catch (err) {
      status.textContent = err.message;
    }
  }
});
