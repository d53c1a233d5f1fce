// The city map every page builds on: base tiles from the configured server (optional), the city's
// district outlines from the platform's own GeoJSON, and, closer in, the neighbourhoods (동) and the
// gazetteer's places as a light base layer of their own: the map stays useful with no tile server at all.
// A search box (a combobox over /api/places) takes the map to a place typed by name.
import L from "leaflet";
import iconUrl from "leaflet/dist/images/marker-icon.png";
import iconRetinaUrl from "leaflet/dist/images/marker-icon-2x.png";
import shadowUrl from "leaflet/dist/images/marker-shadow.png";

L.Icon.Default.mergeOptions({ iconUrl, iconRetinaUrl, shadowUrl });
L.Icon.Default.imagePath = "";

export { L };

// Street zoom: from here the neighbourhoods' outlines and names show; places' names from PLACES_ZOOM.
const HOODS_ZOOM = 14;
const PLACES_ZOOM = 15;
const SEARCH_ZOOM = 16;

export function cityMap(el) {
  const data = el.dataset;
  const map = L.map(el, { zoomControl: true, preferCanvas: false }).setView(
    JSON.parse(data.center),
    Number(data.zoom),
  );
  el.dataset.state = "loading";
  // A page that places the view itself (a ward, a report) keeps it: the districts' fit is only a default.
  let placed = false;
  map.once("movestart", () => {
    placed = true;
  });
  map.on("moveend", () => {
    el.dataset.zoomNow = String(map.getZoom());
  });

  if (data.tiles) {
    let failures = 0;
    const tiles = L.tileLayer(data.tiles, { attribution: data.attribution, maxZoom: 19 });
    tiles.on("tileerror", () => {
      failures += 1;
      if (failures === 3) {
        el.classList.add("no-tiles");
        showNotice(el, data.noTiles, "no-tiles");
      }
    });
    tiles.addTo(map);
  } else {
    el.classList.add("no-tiles");
  }

  const districts = L.geoJSON(null, {
    className: "district",
    style: { color: "#1d4ed8", weight: 2, fillColor: "#60a5fa", fillOpacity: 0.08 },
    onEachFeature: (feature, layer) => {
      layer.bindTooltip(feature.properties.name, { sticky: true });
      layer.getElement?.()?.setAttribute("data-code", feature.properties.code);
    },
  }).addTo(map);

  const ready = fetch(data.districts)
    .then((r) => {
      if (!r.ok) throw new Error(`districts: HTTP ${r.status}`);
      return r.json();
    })
    .then((geojson) => {
      districts.addData(geojson);
      districts.eachLayer((layer) => {
        layer.getElement()?.setAttribute("data-code", layer.feature.properties.code);
      });
      if (geojson.features.some((f) => f.properties.approximate)) showNotice(el, data.approximate, "approximate");
      // Not animated: a page fitting its own view right after would be ignored mid-animation.
      if (geojson.features.length && !placed) map.fitBounds(districts.getBounds(), { padding: [8, 8], animate: false });
      el.dataset.state = "ready";
      el.dataset.districtCount = String(geojson.features.length);
    })
    .catch((err) => {
      el.dataset.state = "error";
      showNotice(el, String(err));
    });

  if (data.hoods) baseLayer(map, el);
  if (data.places && data.search !== "off") searchBox(map, el);
  return { map, districts, ready };
}

// --- the offline base layer: neighbourhoods and places, fetched for the view --------------------------

function viewBox(map) {
  const b = map.getBounds().pad(0.25);
  return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(5)).join(",");
}

function label(lat, lon, text, className) {
  return L.marker([lat, lon], {
    icon: L.divIcon({ className, html: "", iconSize: null }),
    interactive: false,
    keyboard: false,
  }).on("add", (ev) => {
    ev.target.getElement().textContent = text;
  });
}

function baseLayer(map, el) {
  const data = el.dataset;
  const hoods = L.layerGroup().addTo(map);
  const places = L.layerGroup().addTo(map);
  let asked = 0;
  const refresh = () => {
    const zoom = map.getZoom();
    const mine = ++asked;
    if (zoom < HOODS_ZOOM) {
      hoods.clearLayers();
      places.clearLayers();
      el.dataset.hoodLabels = "0";
      return;
    }
    const box = viewBox(map);
    fetch(`${data.hoods}&bbox=${box}`)
      .then((r) => (r.ok ? r.json() : { features: [] }))
      .then((geojson) => {
        if (mine !== asked) return;
        hoods.clearLayers();
        hoods.addLayer(
          L.geoJSON(geojson, {
            interactive: false,
            style: { className: "hood", color: "#64748b", weight: 1, dashArray: "4 3", fill: false },
          }),
        );
        for (const f of geojson.features) {
          const [lat, lon] = f.properties.label;
          hoods.addLayer(label(lat, lon, f.properties.name, "hood-label"));
        }
        el.dataset.hoodLabels = String(geojson.features.length);
      })
      .catch(() => {});
    if (zoom < PLACES_ZOOM) {
      places.clearLayers();
      return;
    }
    fetch(`${data.places}&bbox=${box}&limit=150`)
      .then((r) => (r.ok ? r.json() : { places: [] }))
      .then((body) => {
        if (mine !== asked) return;
        places.clearLayers();
        for (const p of body.places) places.addLayer(label(p.lat, p.lon, p.name, `place-label ${p.kind}`));
        el.dataset.placeLabels = String(body.places.length);
      })
      .catch(() => {});
  };
  map.on("moveend", refresh);
}

// --- the search box: a combobox with a listbox of places (WAI-ARIA APG combobox pattern) ---------------

function searchBox(map, el) {
  const data = el.dataset;
  const id = el.id || "map";
  const box = L.DomUtil.create("div", "map-search leaflet-control");
  box.setAttribute("role", "search");
  const input = L.DomUtil.create("input", "", box);
  Object.assign(input, { type: "search", id: `${id}-search`, autocomplete: "off", placeholder: data.searchLabel });
  input.setAttribute("role", "combobox");
  input.setAttribute("aria-label", data.searchLabel);
  input.setAttribute("aria-autocomplete", "list");
  input.setAttribute("aria-expanded", "false");
  input.setAttribute("aria-controls", `${id}-results`);
  const list = L.DomUtil.create("ul", "map-search-results", box);
  list.id = `${id}-results`;
  list.setAttribute("role", "listbox");
  list.setAttribute("aria-label", data.searchLabel);
  list.hidden = true;
  const status = L.DomUtil.create("div", "map-search-status", box);
  status.setAttribute("role", "status");
  // Keys typed here are the box's: the map's own keys (pan, the report form's pin) must not see them.
  L.DomEvent.disableClickPropagation(box);
  L.DomEvent.disableScrollPropagation(box);
  box.addEventListener("keydown", (ev) => ev.stopPropagation());
  const corner = map.getContainer().querySelector(".leaflet-top.leaflet-right");
  corner.appendChild(box);

  let found = [];
  let active = -1;
  let timer = null;
  let marker = null;

  const close = () => {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  };
  const highlight = (i) => {
    active = i;
    for (const [j, li] of [...list.children].entries()) li.setAttribute("aria-selected", String(j === i));
    if (i >= 0) input.setAttribute("aria-activedescendant", `${id}-result-${i}`);
    else input.removeAttribute("aria-activedescendant");
  };
  const choose = (i) => {
    const p = found[i];
    if (!p) return;
    input.value = p.name;
    close();
    map.setView([p.lat, p.lon], Math.max(map.getZoom(), SEARCH_ZOOM));
    if (marker) marker.remove();
    marker = L.circleMarker([p.lat, p.lon], { radius: 9, className: "search-hit", color: "#7c3aed", weight: 3,
      fillOpacity: 0.2 }).addTo(map);
    el.dataset.searched = p.name;
    status.textContent = p.name;
  };
  const show = (places) => {
    found = places;
    list.replaceChildren();
    for (const [i, p] of places.entries()) {
      const li = document.createElement("li");
      li.id = `${id}-result-${i}`;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", "false");
      li.textContent = p.name;
      if (p.area) {
        const where = document.createElement("span");
        where.className = "where";
        where.textContent = ` ${p.area}`;
        li.appendChild(where);
      }
      li.addEventListener("mousedown", (ev) => ev.preventDefault()); // keep the input's focus
      li.addEventListener("click", () => choose(i));
      list.appendChild(li);
    }
    list.hidden = places.length === 0;
    input.setAttribute("aria-expanded", String(places.length > 0));
    status.textContent = places.length ? "" : data.searchNone;
    highlight(places.length ? 0 : -1);
  };
  const ask = () => {
    const q = input.value.trim();
    if (!q) return show([]);
    const c = map.getCenter();
    const near = `${c.lat.toFixed(5)},${c.lng.toFixed(5)}`;
    return fetch(`${data.places}&q=${encodeURIComponent(q)}&near=${near}&limit=8`)
      .then((r) => (r.ok ? r.json() : { places: [] }))
      .then((body) => {
        if (input.value.trim() === q) show(body.places);
      })
      .catch(() => {});
  };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(ask, 150);
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "ArrowDown" && found.length) {
      ev.preventDefault();
      if (list.hidden) show(found);
      highlight((active + 1) % found.length);
    } else if (ev.key === "ArrowUp" && found.length) {
      ev.preventDefault();
      highlight((active - 1 + found.length) % found.length);
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      clearTimeout(timer);
      // Enter before the list came back: ask, then take the best.
      if (active >= 0 && !list.hidden) choose(active);
      else Promise.resolve(ask()).then(() => choose(0));
    } else if (ev.key === "Escape") {
      close();
    }
  });
  input.addEventListener("blur", () => setTimeout(close, 150));
}

// --- "near <place>, <동>, <구>" wherever a page marks a point with data-near="lat,lon" -------------------

const described = new WeakSet();

function describe(node) {
  const url = document.documentElement.dataset.reverse || "/api/places/reverse";
  for (const item of node.querySelectorAll?.("[data-near]") || []) {
    if (described.has(item) && item.dataset.nearDone === item.dataset.near) continue;
    described.add(item);
    const [lat, lon] = item.dataset.near.split(",");
    const asked = item.dataset.near;
    item.dataset.nearDone = asked;
    const lang = document.documentElement.lang || "ko";
    fetch(`${url}?lat=${lat}&lon=${lon}&lang=${lang}`)
      .then((r) => (r.ok ? r.json() : null))
      .then((body) => {
        if (body?.text && item.dataset.near === asked) item.textContent = body.text;
      })
      .catch(() => {});
  }
}

export function describeNear(root = document) {
  describe(root);
}

if (typeof document !== "undefined") {
  const start = () => {
    describe(document);
    // Parts swapped in later (the console's incident, the guardian's live position) are described too.
    new MutationObserver((changes) => {
      for (const c of changes) {
        if (c.type === "attributes") describe(c.target.parentNode || document);
        for (const n of c.addedNodes) if (n.nodeType === 1) describe(n.parentNode || n);
      }
    }).observe(document.body, { childList: true, subtree: true, attributes: true, attributeFilter: ["data-near"] });
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
}

function showNotice(el, text, kind = "warning") {
  if (el.querySelector(`.map-notice.${kind}`)) return;
  let notices = el.querySelector(".map-notices");
  if (!notices) {
    notices = document.createElement("div");
    notices.className = "map-notices";
    L.DomEvent.disableClickPropagation(notices);
    el.appendChild(notices);
  }
  const note = document.createElement("div");
  note.className = `map-notice ${kind}`;
  note.setAttribute("role", "status");
  note.textContent = text;
  const close = document.createElement("button");
  close.type = "button";
  close.className = "map-notice-close";
  close.setAttribute("aria-label", "×");
  close.textContent = "×";
  close.addEventListener("click", (ev) => {
    ev.stopPropagation();
    note.remove();
  });
  note.appendChild(close);
  notices.appendChild(note);
}
