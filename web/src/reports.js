// Community Mapping pages: the reporting form's map, the public maps, a report's map, the dashboard's heat
// map and the staff helpers. Every page works without this script; it adds the map and the shortcuts.
import { cityMap, L } from "./_citymap.js";
import { gpsOf } from "./_exif.js";
import { SYNC_TAG, discard, entryOf, keep, kept } from "./_outbox.js";

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
  const { suggest } = categorySuggestions(category);

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
    // Offline the place cannot be described; the server checks it when the kept report is sent.
    describe(point).then(checkNearby).catch(() => {});
    suggest(point);
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

  cameraFirst({ place, photos });
  offlineSending(form, { photos, preview, removePin: () => { marker?.remove(); marker = null; } });
}

const LAST_CATEGORY = "smartcity.lastCategory";

// Camera first (shown only with this script): the photo joins the form's photos, then the pin goes where the
// photo says it was taken, else where the phone is, else the citizen taps the map.
function cameraFirst({ place, photos }) {
  const step = $("#camera-step"), camera = $("#camera"), where = $("#camera-where");
  if (!step || !camera) return;
  step.hidden = false;
  camera.addEventListener("change", async () => {
    const taken = Array.from(camera.files);
    if (!taken.length) return;
    const all = new DataTransfer();
    for (const f of [...photos.files, ...taken]) all.items.add(f);
    photos.files = all.files;
    photos.dispatchEvent(new Event("change"));
    camera.value = "";
    const pinned = () => $("#lat").value && $("#lon").value;
    const gps = await gpsOf(taken[0]).catch(() => null);
    if (gps) {
      place(L.latLng(gps.lat, gps.lon), { pan: true });
      where.textContent = where.dataset.photo;
      where.dataset.source = "photo";
    } else if (pinned()) {
      where.textContent = "";
    } else if (navigator.geolocation) {
      navigator.geolocation.getCurrentPosition(
        (pos) => {
          place(L.latLng(pos.coords.latitude, pos.coords.longitude), { pan: true });
          where.textContent = where.dataset.device;
          where.dataset.source = "device";
        },
        () => { where.textContent = where.dataset.none; where.dataset.source = "none"; },
        { enableHighAccuracy: true, timeout: 10000 },
      );
    } else {
      where.textContent = where.dataset.none;
      where.dataset.source = "none";
    }
  });
}

// Suggested categories once the place is known: those most reported within about 300 m, then the one this
// phone used last. A suggestion is only a button: the category is chosen when the citizen taps it.
function categorySuggestions(category) {
  const box = $("#suggested");
  const form = category.form;
  const names = new Map(Array.from(category.options).filter((o) => o.value).map((o) => [o.value, o.textContent]));
  let asked = 0;
  function show(codes) {
    const chosen = codes.filter((c, i) => names.has(c) && codes.indexOf(c) === i).slice(0, 3);
    box.replaceChildren();
    box.hidden = !chosen.length;
    box.dataset.count = String(chosen.length);
    if (!chosen.length) return;
    const title = document.createElement("p");
    title.textContent = box.dataset.title;
    box.append(title);
    for (const code of chosen) {
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "secondary chip";
      chip.dataset.category = code;
      chip.textContent = names.get(code);
      chip.setAttribute("aria-pressed", String(category.value === code));
      chip.addEventListener("click", () => {
        category.value = code;
        category.dispatchEvent(new Event("change"));
        for (const c of $$("button.chip", box)) c.setAttribute("aria-pressed", String(c === chip));
      });
      box.append(chip);
    }
  }
  function suggest(point) {
    const ask = ++asked;
    const last = localStorage.getItem(LAST_CATEGORY);
    const dLat = 300 / 111320, dLon = 300 / (111320 * Math.cos((point.lat * Math.PI) / 180));
    const bbox = [point.lng - dLon, point.lat - dLat, point.lng + dLon, point.lat + dLat].map((v) => v.toFixed(5));
    fetch(`${form.dataset.pinsUrl}?status=&limit=200&bbox=${bbox.join(",")}`, { headers: { Accept: "application/geo+json" } })
      .then((r) => (r.ok ? r.json() : { features: [] }))
      .catch(() => ({ features: [] }))
      .then((data) => {
        if (ask !== asked) return;
        const counts = new Map();
        for (const f of data.features || []) counts.set(f.properties.category, (counts.get(f.properties.category) || 0) + 1);
        const near = [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([code]) => code);
        show(last ? [...near, last] : near);
      });
  }
  category.addEventListener("change", () => {
    for (const c of $$("button.chip", box)) c.setAttribute("aria-pressed", String(c.dataset.category === category.value));
  });
  return { suggest };
}

function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// Sending: through fetch, so that when the server cannot be reached the report (fields and photos) is kept on
// the phone with its idempotency key, and sent once the connection returns (pwa.js, or the service worker's
// Background Sync). The key is made afresh for each page shown: the service worker may show the same kept
// copy of this page many times, and one key must never stand for two reports.
function offlineSending(form, { photos, preview, removePin }) {
  const key = $('input[name="idempotency_key"]', form);
  const submit = $("#submit-report");
  const note = $("#kept-note");
  key.value = randomKey();
  const done = () => { delete form.dataset.sending; submit.disabled = false; };

  async function keepHere(data) {
    const lat = $("#lat"), where = $("#where-text");
    if (!lat.value || !$("#lon").value) {
      where.textContent = form.dataset.noPin;
      where.classList.add("error");
      where.scrollIntoView({ block: "center" });
      return done();
    }
    if (!form.checkValidity()) {
      form.reportValidity();
      return done();
    }
    await keep(entryOf(form, data));
    localStorage.setItem(LAST_CATEGORY, $("#category").value);
    navigator.serviceWorker?.ready.then((r) => r.sync?.register(SYNC_TAG)).catch(() => {});
    form.reset();
    $("#category").dispatchEvent(new Event("change"));
    key.value = randomKey();
    preview.replaceChildren();
    photos.setCustomValidity("");
    removePin();
    note.textContent = form.dataset.kept;
    note.hidden = false;
    form.dataset.kept = "1";
    window.dispatchEvent(new Event("outbox:changed"));
    note.scrollIntoView({ block: "center" });
    done();
  }

  // One tap is enough on a slow phone: the idempotency key makes a repeat harmless, this makes it rare.
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (form.dataset.sending) return;
    form.dataset.sending = "1";
    submit.disabled = true;
    note.hidden = true;
    const data = new FormData(form);
    let response;
    try {
      response = await fetch(form.action, { method: "POST", body: data, credentials: "same-origin", headers: { Accept: "text/html" } });
    } catch {
      return keepHere(data).catch(done);
    }
    if (response.ok && response.redirected) {
      localStorage.setItem(LAST_CATEGORY, $("#category").value);
      location.assign(response.url);
      return;
    }
    // The server's answer is a page (the mistakes next to their fields): send the form the plain way to show it,
    // with the same key (nothing was stored under it).
    HTMLFormElement.prototype.submit.call(form);
  });

  restoreKept(form, photos);
}

// A kept report the server refused (pwa.js's note links here with ?restore=key): back into the form to correct.
async function restoreKept(form, photos) {
  const wanted = new URL(location.href).searchParams.get("restore");
  if (!wanted) return;
  const entry = (await kept().catch(() => [])).find((e) => e.key === wanted);
  if (!entry) return;
  for (const [name, value] of entry.fields) {
    if (name === "csrf_token" || name === "idempotency_key") continue;
    const input = form.elements.namedItem(name);
    if (input instanceof RadioNodeList) {
      for (const el of input) if (el.type === "checkbox" && el.value === value) el.checked = true;
    } else if (input?.type === "checkbox") input.checked = input.value === value;
    else if (input) {
      input.value = value;
      input.dispatchEvent(new Event("change"));
    }
  }
  const files = new DataTransfer();
  for (const f of entry.files) files.items.add(new File([f.blob], f.name, { type: f.blob.type }));
  photos.files = files.files;
  photos.dispatchEvent(new Event("change"));
  await discard(entry.key);
  window.dispatchEvent(new Event("outbox:changed"));
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
