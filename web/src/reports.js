// Community Mapping pages: the reporting form's map, the public maps, a report's map, the dashboard's heat
// map and the staff helpers. Every page works without this script; it adds the map and the shortcuts.
import { cityMap, L } from "./_citymap.js";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const csrf = () => $('input[name="csrf_token"]')?.value || "";

// cityMap fits the city once its districts load, with a zoom animation that Leaflet starts on the next frame;
// a view set before that animation ends is undone by it, so page views are set after it.
function afterCityFit(map, ready, fn) {
  ready.finally(() => requestAnimationFrame(() => {
    if (map._animatingZoom) map.once("zoomend", () => fn());
    else fn();
  }));
}

function pinStyle(colour) {
  return { radius: 8, color: "#fff", weight: 2, fillColor: colour || "#1d4ed8", fillOpacity: 0.95 };
}

function pinsLayer(map, url, { fit = false } = {}) {
  const layer = L.layerGroup().addTo(map);
  const el = map.getContainer();
  return fetch(url, { headers: { Accept: "application/geo+json" } })
    .then((r) => r.json())
    .then((data) => {
      const bounds = [];
      for (const f of data.features || []) {
        const [lon, lat] = f.geometry.coordinates;
        const p = f.properties;
        const marker = L.circleMarker([lat, lon], { ...pinStyle(p.colour), className: `pin status-${p.status}` });
        const link = document.createElement("a");
        link.href = p.url;
        link.textContent = `#${f.id} ${p.title}`;
        const box = document.createElement("div");
        box.append(link, document.createElement("br"), `${p.status_name} · ${p.category_name}`);
        marker.bindPopup(box);
        marker.addTo(layer);
        marker.getElement?.()?.setAttribute("data-id", String(f.id));
        bounds.push([lat, lon]);
      }
      el.dataset.pins = String(bounds.length);
      el.dataset.pinsState = "ready";
      if (fit && bounds.length) map.fitBounds(bounds, { padding: [24, 24], maxZoom: 16, animate: false });
      return layer;
    });
}

// --- the reporting form ---------------------------------------------------------------------------------

function reportForm(form) {
  const el = $("#report-map");
  const city = cityMap(el);
  const { map } = city;
  const lat = $("#lat"), lon = $("#lon"), category = $("#category");
  const whereText = $("#where-text");
  const nearbyBox = $("#nearby");
  let marker = null;
  let inside = null;

  function describe(point) {
    const url = `${form.dataset.whereUrl}?lat=${point.lat}&lon=${point.lng}`;
    return fetch(url).then((r) => r.json()).then((w) => {
      inside = w.inside;
      whereText.textContent = w.inside ? [w.district_name, w.neighbourhood_name].filter(Boolean).join(" · ") : w.message;
      whereText.classList.toggle("error", !w.inside);
      el.dataset.inside = String(w.inside);
      marker?.setStyle?.(pinStyle(w.inside ? "#1d4ed8" : "#b91c1c"));
    });
  }

  function place(point, { pan = false } = {}) {
    lat.value = point.lat.toFixed(6);
    lon.value = point.lng.toFixed(6);
    if (!marker) {
      marker = L.circleMarker(point, { ...pinStyle("#1d4ed8"), radius: 11, className: "chosen-pin" }).addTo(map);
    } else {
      marker.setLatLng(point);
    }
    if (pan) map.setView(point, Math.max(map.getZoom(), 16));
    el.dataset.pinned = "1";
    describe(point).then(checkNearby);
  }

  map.on("click", (e) => place(e.latlng));
  // Without a pointer: Enter (or Space) on the focused map places the pin at its centre, then the arrow keys
  // move the pin rather than the map (Shift for larger steps). Captured so Leaflet's own arrow-key panning
  // does not also run.
  const STEP = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
  el.addEventListener("keydown", (ev) => {
    if (ev.target !== el || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      place(map.getCenter());
    } else if (marker && STEP[ev.key]) {
      ev.preventDefault();
      ev.stopImmediatePropagation();
      const size = ev.shiftKey ? 50 : 10;
      const at = map.latLngToContainerPoint(marker.getLatLng()).add(L.point(STEP[ev.key]).multiplyBy(size));
      const point = map.containerPointToLatLng(at);
      place(point);
      map.panInside(point, { padding: [20, 20] });
    }
  }, { capture: true });
  const restore = () => {
    if (lat.value && lon.value && !Number.isNaN(+lat.value) && !Number.isNaN(+lon.value)) {
      place(L.latLng(+lat.value, +lon.value), { pan: true });
    }
  };
  afterCityFit(map, city.ready, restore);
  [lat, lon].forEach((input) => input.addEventListener("change", restore));

  $("#locate-me")?.addEventListener("click", (ev) => {
    const button = ev.currentTarget;
    if (!navigator.geolocation) {
      whereText.textContent = button.dataset.denied;
      return;
    }
    navigator.geolocation.getCurrentPosition(
      (pos) => place(L.latLng(pos.coords.latitude, pos.coords.longitude), { pan: true }),
      () => { whereText.textContent = button.dataset.denied; },
      { enableHighAccuracy: true, timeout: 10000 },
    );
  });

  // Only the chosen category's questions show and are sent: a disabled fieldset's controls are neither
  // validated nor submitted, so another category's answers (or its required fields) never reach the server.
  function showAttributes() {
    for (const fs of $$("fieldset.attributes", form)) {
      const other = fs.dataset.category !== category.value;
      fs.hidden = other;
      fs.disabled = other;
      // The chosen category's required questions are checked before sending, as the server will.
      for (const input of $$("select[data-required], input[data-required]", fs)) input.required = !other;
    }
  }
  category.addEventListener("change", () => { showAttributes(); checkNearby(); });
  showAttributes();

  function checkNearby() {
    if (!category.value || !lat.value || !lon.value || inside === false) {
      nearbyBox.hidden = true;
      return Promise.resolve();
    }
    const url = `${form.dataset.nearbyUrl}?category=${encodeURIComponent(category.value)}&lat=${lat.value}&lon=${lon.value}`;
    return fetch(url).then((r) => (r.ok ? r.json() : { items: [] })).then(({ items }) => {
      nearbyBox.replaceChildren();
      nearbyBox.hidden = !items.length;
      form.dataset.nearby = String(items.length);
      if (!items.length) return;
      const d = nearbyBox.dataset;
      const title = document.createElement("p");
      title.className = "nearby-title";
      title.textContent = d.title;
      const list = document.createElement("ul");
      for (const item of items) {
        const li = document.createElement("li");
        li.dataset.id = item.id;
        const a = document.createElement("a");
        a.href = item.url;
        a.target = "_blank";
        a.textContent = `#${item.id} ${item.title}`;
        const meta = document.createElement("small");
        meta.textContent = ` ${item.status_name} · ${Math.round(item.distance_m)} ${d.away} · ${item.support_count} ${d.supporters}`;
        const button = document.createElement("button");
        button.type = "button";
        button.className = "secondary me-too";
        button.textContent = d.meToo;
        button.addEventListener("click", () => support(item, li, button));
        li.append(a, meta, button);
        list.append(li);
      }
      nearbyBox.append(title, list);
    });
  }

  function support(item, li, button) {
    button.disabled = true;
    fetch(`/reports/${item.id}/support`, {
      method: "POST",
      headers: { "X-CSRF-Token": csrf(), Accept: "application/json" },
    })
      .then((r) => r.json().then((body) => ({ ok: r.ok, body })))
      .then(({ ok, body }) => {
        const note = document.createElement("p");
        note.setAttribute("role", "status");
        if (ok) {
          note.className = "ok supported";
          const a = document.createElement("a");
          a.href = item.url;
          a.textContent = `#${item.id}`;
          note.append(nearbyBox.dataset.supported, " ", a, ` (${body.support_count})`);
        } else {
          note.className = "error";
          note.textContent = body.error?.message || "error";
          button.disabled = false;
        }
        li.append(note);
      });
  }

  // Description counter.
  const description = $("#description");
  const counter = $(`#${description.dataset.counter}`);
  const count = () => { counter.textContent = `${description.value.length} / ${description.maxLength}`; };
  description.addEventListener("input", count);

  // Photo previews, checked for number and size before the upload.
  const photos = $("#photos");
  const preview = $("#photo-preview");
  photos.addEventListener("change", () => {
    preview.replaceChildren();
    const files = Array.from(photos.files);
    const max = Number(photos.dataset.max), maxBytes = Number(photos.dataset.maxBytes);
    let problem = files.length > max ? photos.dataset.tooMany : "";
    for (const file of files) {
      if (file.size > maxBytes) problem = photos.dataset.tooLarge;
      const img = document.createElement("img");
      img.src = URL.createObjectURL(file);
      img.alt = file.name;
      img.onload = () => URL.revokeObjectURL(img.src);
      preview.append(img);
    }
    photos.setCustomValidity(problem);
    if (problem) photos.reportValidity();
  });

  // One tap is enough on a slow phone: the idempotency key makes a repeat harmless, this makes it rare.
  form.addEventListener("submit", (ev) => {
    if (form.dataset.sending) { ev.preventDefault(); return; }
    form.dataset.sending = "1";
    $("#submit-report").disabled = true;
  });
}

// --- maps of many reports, one report, and the heat map ---------------------------------------------------

function reportsMap(el) {
  const { map, ready } = cityMap(el);
  afterCityFit(map, ready, () => pinsLayer(map, el.dataset.pins, { fit: el.dataset.fit === "1" }));
  const sub = $("#subscribe-link"), feed = $("#feed-link");
  if (sub && !new URL(sub.href).searchParams.get("district")) {
    map.on("moveend", () => {
      const b = map.getBounds();
      const bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(5)).join(",");
      sub.href = `/reports/subscribe?bbox=${bbox}`;
      if (feed) feed.href = `/reports/feed.atom?bbox=${bbox}`;
    });
  }
}

function singleReportMap(el) {
  const { map, ready } = cityMap(el);
  const point = [Number(el.dataset.lat), Number(el.dataset.lon)];
  map.on("zoomend moveend", () => { el.dataset.zoomNow = String(map.getZoom()); });
  L.circleMarker(point, { ...pinStyle(el.dataset.colour), radius: 10 }).addTo(map);
  // After the city outline has been fitted (cityMap does that once its districts load), zoom to the report.
  afterCityFit(map, ready, () => {
    map.setView(point, 16, { animate: false });
    el.dataset.viewZoom = String(map.getZoom());
  });
}

function heatMap(el) {
  const { map, ready } = cityMap(el);
  const cells = JSON.parse(el.dataset.heat || "[]");
  const top = Math.max(1, ...cells.map((c) => c.count));
  const layer = L.featureGroup().addTo(map);
  for (const c of cells) {
    const share = c.count / top;
    L.polygon(c.hexagon, {
      className: "heat-cell", color: "#b91c1c", weight: 1, fillColor: "#dc2626", fillOpacity: 0.15 + 0.6 * share,
    }).bindTooltip(String(c.count)).addTo(layer);
  }
  el.dataset.cells = String(cells.length);
  afterCityFit(map, ready, () => {
    if (cells.length) map.fitBounds(layer.getBounds(), { padding: [12, 12], animate: false });
  });
}

// --- staff helpers -------------------------------------------------------------------------------------

function staffHelpers() {
  for (const select of $$("select.template-pick")) {
    select.addEventListener("change", () => {
      const option = select.selectedOptions[0];
      const target = document.getElementById(select.dataset.target);
      if (!option?.dataset.text || !target) return;
      target.value = target.value ? `${target.value}\n${option.dataset.text}` : option.dataset.text;
      const wanted = option.dataset.status;
      const radio = wanted && $(`#status-form input[name=status][value="${wanted}"]`);
      if (radio && !$("#status-form input[name=status]:checked")) radio.checked = true;
    });
  }
  for (const chip of $$("button[data-parent]")) {
    chip.addEventListener("click", () => {
      $('input[name="parent_id"]').value = chip.dataset.parent;
      const dup = $('#status-form input[name=status][value="duplicate"]');
      if (dup) dup.checked = true;
    });
  }
  const statusForm = $("#status-form");
  if (statusForm) {
    const pick = $(".parent-pick", statusForm);
    const templates = $("select[name=template_id]", statusForm);
    const sync = () => {
      const chosen = $("input[name=status]:checked", statusForm)?.value;
      pick.hidden = chosen !== "duplicate";
      const after = $("label.after-photo", statusForm);
      if (after) after.hidden = chosen !== "fixed";
      // Only the templates written for the chosen status (or for any) are offered; the service refuses others.
      if (!templates || !chosen) return;
      for (const option of templates.options) {
        const off = Boolean(option.dataset.status) && option.dataset.status !== chosen;
        option.hidden = off;
        option.disabled = off;
      }
      if (templates.selectedOptions[0]?.disabled) templates.value = "";
    };
    statusForm.addEventListener("change", sync);
    sync();
  }
}

// The queue's bulk form: only the chosen change's fields, and only the chosen status's templates.
function bulkForm(form) {
  const action = $("#bulk-action", form), status = $("#bulk-status", form), templates = $("#bulk-template", form);
  const sync = () => {
    for (const label of $$("label[data-for]", form)) label.hidden = label.dataset.for !== action.value;
    if (!templates) return;
    for (const option of templates.options) {
      const off = Boolean(option.dataset.status) && option.dataset.status !== status.value;
      option.hidden = off;
      option.disabled = off;
    }
    if (templates.selectedOptions[0]?.disabled) templates.value = "";
  };
  form.addEventListener("change", sync);
  sync();
}

const form = $("#report-form");
if (form) reportForm(form);
const bulk = $("#bulk-form");
if (bulk) bulkForm(bulk);
for (const el of $$("[data-pins]")) reportsMap(el);
const single = $("#report-map[data-lat]");
if (single) singleReportMap(single);
const heat = $("#heat-map");
if (heat) heatMap(heat);
staffHelpers();
